//! `ironroot demo`: the whole chain of trust on this machine, with embedded defaults.
//!
//! The demo runs the same commands a person would type (it prints each one, then runs this
//! very binary with those arguments), so every step can be repeated by hand from the printed
//! transcript:
//! sign firmware, boot it on a simulated device with secure boot and anti-rollback, create the
//! CA, start the server, enroll a device over EST with a one-time claim token, talk MQTT over
//! mutual TLS under least-privilege policies, revoke the device and watch its live session
//! end, and verify the tamper-evident audit log.

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ironroot_device::{
    Answer, DeviceError, DeviceTls, EstClient, MqttDevice, MqttTarget, TrustAnchor, csr,
};
use ironroot_element::{Huk, KeyStorage, SecureElement, SoftwareElement};

/// The device the demo enrolls.
const DEVICE: &str = "demo-sensor-1";
/// How many simulated devices the fleet step runs.
const FLEET: usize = 200;
/// The data directory of the demo's server, inside the demo directory.
const DATA: &str = "data";

/// Run the whole chain of trust on this machine in one go, with embedded defaults.
#[derive(Debug, Args)]
#[command(
    long_about = "Run the whole chain of trust on this machine in one go.\n\n\
    Signs firmware and boots it on a simulated device (secure boot, trial update, anti-rollback), \
    creates the CA, starts the ironroot server (HTTPS API + MQTT over mutual TLS) on free local \
    ports, enrolls a device over EST with a one-time claim token, publishes telemetry under the \
    default least-privilege policy, shows what is refused, revokes the device and measures how \
    fast its live session ends, runs a fleet of 200 simulated devices and the attack scenario \
    (every attack refused and audited), then verifies the tamper-evident audit log and prints \
    a report of every link.\n\n\
    Every step prints the command it runs, so you can repeat it by hand. Everything is written \
    to one directory (a new one under the system temp directory unless --dir is given); nothing \
    outside it is touched."
)]
pub struct DemoArgs {
    /// Directory for the demo's files (created; must be empty or absent).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("ironroot-demo-{}", std::process::id())),
    };
    if dir.exists() && fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} is not empty; give --dir a new or empty directory",
            dir.display()
        );
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    std::env::set_current_dir(&dir)?;
    println!("ironroot demo: working in {}\n", dir.display());

    let exe = std::env::current_exe().context("cannot find the ironroot binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut demo = Demo {
        dir,
        exe,
        runtime,
        server: None,
    };
    let result = demo.all_steps();
    demo.stop_server();
    result?;
    println!("\nDone. The demo's files stay in {}.", demo.dir.display());
    Ok(ExitCode::SUCCESS)
}

struct Demo {
    dir: PathBuf,
    exe: PathBuf,
    runtime: tokio::runtime::Runtime,
    server: Option<Child>,
}

/// What the device holds after enrollment.
struct Enrolled {
    tls: DeviceTls,
}

impl Demo {
    fn all_steps(&mut self) -> Result<()> {
        self.firmware_and_secure_boot()?;
        let url = self.start_server()?;
        self.register_device()?;
        let token = self.claim_token()?;
        let enrolled = self.enroll(&url, &token)?;
        let mut session = self.mqtt(&enrolled)?;
        self.quarantine(&mut session)?;
        self.revoke(&enrolled, &mut session)?;
        let fleet = self.fleet()?;
        self.stop_server();
        self.audit()?;
        report(&fleet);
        Ok(())
    }

    /// Step 6: a whole fleet through the same chain, then the attacks.
    fn fleet(&self) -> Result<serde_json::Value> {
        section("6. A fleet: 200 simulated devices, then the attacks");
        note(
            "200 virtual devices power on through secure boot (boot ROM -> bootloader -> \
             application, each verified against the key fused in OTP), each with its own \
             sealed element and key, enroll over EST with one group claim token (quota 200), \
             connect over mutual TLS, report what secure boot measured and send QoS 1 \
             telemetry. Then the attacks a compromised device would try, firmware signed with \
             the wrong key and a downgrade among them; each must be refused and appear in the \
             audit log.",
        );
        let line = format!(
            "simulate --data-dir {DATA} --devices {FLEET} --messages 2 --interval 100ms \
             --prefix fleet --scenario attacks --json"
        );
        println!("\n$ ironroot {line}");
        let out = Command::new(&self.exe)
            .args(line.split_whitespace())
            .current_dir(&self.dir)
            .env_remove("IRONROOT_DATA_DIR")
            .env_remove("IRONROOT_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run `ironroot {line}`"))?;
        let fleet: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("`ironroot {line}` printed no report"))?;
        println!(
            "booted firmware {} and reported it: {} devices; provisioned {} / connected {} of {} \
             devices; {} telemetry messages acknowledged, PUBACK p50 {} ms, p99 {} ms; {} failures",
            fleet["firmware_version"].as_str().unwrap_or("-"),
            fleet["booted"],
            fleet["provisioned"],
            fleet["connected"],
            fleet["devices"],
            fleet["messages"],
            fleet["p50_ms"],
            fleet["p99_ms"],
            fleet["failures"]
        );
        for a in fleet["attacks"].as_array().into_iter().flatten() {
            println!(
                "attack {:<44} -> {} and {}",
                a["name"].as_str().unwrap_or("?"),
                if a["refused"] == true {
                    "refused"
                } else {
                    "NOT REFUSED"
                },
                if a["audited"] == true {
                    "audited"
                } else {
                    "NOT AUDITED"
                },
            );
        }
        if !out.status.success() {
            bail!(
                "the fleet step failed: every device must boot, report and connect, and every attack be refused and audited"
            );
        }
        Ok(fleet)
    }

    /// Step 4: MQTT over mutual TLS under the default least-privilege policy.
    fn mqtt(&self, enrolled: &Enrolled) -> Result<MqttDevice> {
        section("4. MQTT over mutual TLS with least-privilege policies");
        let target = self.mqtt_target()?;
        note(
            "The device connects with its certificate; its client id must equal the \
             certificate's name. The default device policy allows publishing to \
             devices/<id>/telemetry and subscribing to devices/<id>/commands, nothing else.",
        );
        let mut dev = self
            .runtime
            .block_on(MqttDevice::connect(&target, DEVICE, &enrolled.tls))
            .context("MQTT connect")?;
        println!(
            "connected to mqtts://{}:{} as {DEVICE}",
            target.host, target.port
        );
        let own_commands = format!("devices/{DEVICE}/commands");
        let own_telemetry = format!("devices/{DEVICE}/telemetry");
        self.expect(&mut dev, Op::Subscribe(&own_commands), true)?;
        self.expect(
            &mut dev,
            Op::Publish(&own_telemetry, br#"{"temp_c":21.5}"#),
            true,
        )?;
        note("Another device's topic, and a wildcard over everything: refused.");
        self.expect(
            &mut dev,
            Op::Publish("devices/other-device/telemetry", b"spoofed"),
            false,
        )?;
        self.expect(&mut dev, Op::Subscribe("#"), false)?;
        self.expect(&mut dev, Op::Subscribe("$SYS/#"), false)?;
        Ok(dev)
    }

    /// Step 4b: quarantine and release act on the live session.
    fn quarantine(&self, dev: &mut MqttDevice) -> Result<()> {
        note(
            "Quarantine: the operator isolates the device. Its live session stays, but the \
             quarantine policy replaces its policies: only devices/<id>/status may be published.",
        );
        let telemetry = format!("devices/{DEVICE}/telemetry");
        let status = format!("devices/{DEVICE}/status");
        let start = Instant::now();
        self.cmd(&format!("device quarantine {DEVICE} --data-dir {DATA}"))?;
        let elapsed = self.until_verdict(dev, &telemetry, false, start)?;
        println!("publish {telemetry:<37} -> refused ({elapsed} ms after the command started)");
        self.expect(dev, Op::Publish(&status, br#"{"quarantined":true}"#), true)?;
        note("Release: the device is active again and its policies apply.");
        let start = Instant::now();
        self.cmd(&format!("device release {DEVICE} --data-dir {DATA}"))?;
        let elapsed = self.until_verdict(dev, &telemetry, true, start)?;
        println!("publish {telemetry:<37} -> accepted ({elapsed} ms after the command started)");
        Ok(())
    }

    /// Publishes to `topic` every 50 ms until the verdict is `allowed` (at most 3 s); returns
    /// the milliseconds since `start`.
    fn until_verdict(
        &self,
        dev: &mut MqttDevice,
        topic: &str,
        allowed: bool,
        start: Instant,
    ) -> Result<u128> {
        loop {
            let answer = self.runtime.block_on(dev.publish(topic, b"{}"))?;
            if (answer == Answer::Accepted) == allowed {
                return Ok(start.elapsed().as_millis());
            }
            if start.elapsed() > Duration::from_secs(3) {
                bail!("publish {topic}: still {answer:?} 3 s after the state change");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One publish or subscribe whose verdict must be `allowed`.
    fn expect(&self, dev: &mut MqttDevice, op: Op<'_>, allowed: bool) -> Result<()> {
        let (what, answer) = match op {
            Op::Publish(topic, payload) => (
                format!("publish {topic}"),
                self.runtime.block_on(dev.publish(topic, payload))?,
            ),
            Op::Subscribe(filter) => (
                format!("subscribe {filter}"),
                self.runtime.block_on(dev.subscribe(filter))?,
            ),
        };
        match (&answer, allowed) {
            (Answer::Accepted, true) => println!("{what:<45} -> accepted"),
            (Answer::Refused(why), false) => println!("{what:<45} -> refused ({why})"),
            (Answer::Accepted, false) => bail!("{what} was accepted but must be refused"),
            (Answer::Refused(why), true) => bail!("{what} was refused ({why}) but must be allowed"),
        }
        Ok(())
    }

    /// Step 5: revocation ends the live session; the certificate no longer connects.
    fn revoke(&self, enrolled: &Enrolled, session: &mut MqttDevice) -> Result<()> {
        section("5. Revocation cuts the live session");
        note(
            "The operator revokes the device while it is connected. The revoked serial reaches \
             the broker through the registry's change feed and the session is cut.",
        );
        let start = Instant::now();
        self.cmd(&format!("device revoke {DEVICE} --data-dir {DATA}"))?;
        let (why, _) = self
            .runtime
            .block_on(session.wait_closed(Duration::from_secs(5)))
            .context("the revoked device's session must end within 5 s")?;
        println!(
            "the device's MQTT session ended {} ms after the revoke command started ({why})",
            start.elapsed().as_millis()
        );
        note("Connecting again with the revoked certificate: refused in the TLS handshake.");
        let target = self.mqtt_target()?;
        match self
            .runtime
            .block_on(MqttDevice::connect(&target, DEVICE, &enrolled.tls))
        {
            Ok(_) => bail!("the revoked certificate connected again"),
            Err(e) => {
                let e = e.to_string();
                let short = e.split(": https://").next().unwrap_or(&e);
                println!("refused: {short}");
                println!(
                    "(the audit log below records why: mqtt.certificate_rejected ... Revoked)"
                );
            }
        }
        Ok(())
    }

    /// Step 6: the audit log, after a clean shutdown.
    fn audit(&self) -> Result<()> {
        section("7. The tamper-evident audit log");
        note(
            "The server stopped cleanly. Every step above is in an RFC 6962 Merkle log with \
             signed checkpoints: verify recomputes the tree and checks every checkpoint.",
        );
        self.cmd(&format!("audit verify --data-dir {DATA}"))?;
        self.cmd(&format!("audit show --data-dir {DATA} --device {DEVICE}"))?;
        Ok(())
    }

    /// Where `ironroot up` listens for MQTT (it writes the address into the data directory).
    fn mqtt_target(&self) -> Result<MqttTarget> {
        let path = self.dir.join(DATA).join(crate::cmd::up::MQTT_ADDR_FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let addr: std::net::SocketAddr = text.trim().parse().context("MQTT address")?;
        Ok(MqttTarget {
            host: addr.ip().to_string(),
            port: addr.port(),
        })
    }

    /// Step 1: sign firmware and boot it on a simulated device.
    fn firmware_and_secure_boot(&self) -> Result<()> {
        section("1. Firmware signing and secure boot (MCUboot-compatible)");
        note("A signing key; its SHA-256 is fused into the device's OTP as the root of trust.");
        self.cmd("firmware keygen -t ecdsa-p256 -k root.pem")?;
        write_firmware(&self.dir.join("bl.bin"), 20_000, 1)?;
        write_firmware(&self.dir.join("app-1.bin"), 90_000, 2)?;
        write_firmware(&self.dir.join("app-2.bin"), 90_000, 3)?;
        note("Sign a bootloader and two application versions (security counters 1 and 2).");
        self.cmd(
            "firmware sign -k root.pem -v 0.1.0 -H 0x200 --pad-header -S 0x10000 bl.bin bl.signed",
        )?;
        self.cmd("firmware sign -k root.pem -v 1.0.0 -s 1 -H 0x200 --pad-header -S 0x40000 --align 8 app-1.bin app-1.signed")?;
        self.cmd("firmware sign -k root.pem -v 2.0.0 -s 2 -H 0x200 --pad-header -S 0x40000 --align 8 --pad app-2.bin app-2.signed")?;
        self.cmd("firmware verify -k root.pem app-2.signed")?;

        note("One flipped byte in the signed image: verification refuses it.");
        let mut tampered = fs::read(self.dir.join("app-2.signed"))?;
        tampered[0x400] ^= 0x01;
        fs::write(self.dir.join("app-2.tampered"), tampered)?;
        self.cmd_fails("firmware verify -k root.pem app-2.tampered")?;

        note("A simulated device: boot ROM -> bootloader -> application, each stage verified.");
        self.cmd("boot init --flash device --root-key root.pem")?;
        self.cmd("boot write --flash device --bootloader bl.signed")?;
        self.cmd("boot write --flash device --primary app-1.signed")?;
        self.cmd("boot run --flash device")?;

        note(
            "An update: 2.0.0 boots on trial, the application confirms it after its health check.",
        );
        self.cmd("boot write --flash device --secondary app-2.signed")?;
        self.cmd("boot run --flash device")?;
        self.cmd("boot confirm --flash device")?;

        note(
            "A downgrade to 1.0.0 (security counter 1, below the confirmed 2.0.0's counter 2) is refused.",
        );
        self.cmd("firmware sign -k root.pem -v 1.0.0 -s 1 -H 0x200 --pad-header -S 0x40000 --align 8 --pad app-1.bin old.signed")?;
        self.cmd("boot write --flash device --secondary old.signed")?;
        self.cmd("boot run --flash device")?;
        Ok(())
    }

    /// Step 2: start the server on free local ports; returns its HTTPS URL.
    fn start_server(&mut self) -> Result<String> {
        section("2. The ironroot server: CA, provisioning API, EST");
        note(
            "The first start creates the CA (the root key is marked for offline storage), \
             an admin token (0600) and the server's certificate, then serves HTTPS.",
        );
        // The demo's root passphrase is random and kept in a 0600 file of the demo directory;
        // in production it lives offline with the root key.
        let passphrase = random_secret()?;
        write_private(&self.dir.join("root-passphrase"), passphrase.as_bytes())?;
        let api = free_port()?;
        let mqtt = free_port()?;
        let line =
            format!("up --data-dir {DATA} --api-addr 127.0.0.1:{api} --mqtt-addr 127.0.0.1:{mqtt}");
        println!("\n$ IRONROOT_ROOT_PASSPHRASE=$(cat root-passphrase) ironroot {line} > up.log &");
        let log = fs::File::create(self.dir.join("up.log"))?;
        let child = Command::new(&self.exe)
            .args(line.split_whitespace())
            .env("IRONROOT_ROOT_PASSPHRASE", &passphrase)
            .env_remove("IRONROOT_DATA_DIR")
            .env_remove("IRONROOT_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start `ironroot up`")?;
        self.server = Some(child);

        let url_file = self.dir.join(DATA).join(ironroot_server::SERVER_URL_FILE);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let log = fs::read_to_string(self.dir.join("up.log")).unwrap_or_default();
            let mqtt_file = self.dir.join(DATA).join(crate::cmd::up::MQTT_ADDR_FILE);
            if log.contains("Press Ctrl-C") && url_file.exists() && mqtt_file.exists() {
                for l in log.lines().filter(|l| !l.contains("Ctrl-C")) {
                    println!("{l}");
                }
                break;
            }
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("`ironroot up` exited ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                bail!("`ironroot up` did not come up within 120 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(fs::read_to_string(url_file)?.trim().to_string())
    }

    /// Step 2b: the operator registers the device.
    fn register_device(&self) -> Result<()> {
        note("The operator registers the device (through the server, with the admin token).");
        self.cmd(&format!(
            "device add {DEVICE} --data-dir {DATA} --group sensors --attr model=thermo-2"
        ))
    }

    /// Step 2c: the operator mints a one-time claim token for the device.
    fn claim_token(&self) -> Result<String> {
        note("A one-time claim token for the device (the server keeps only its hash).");
        let line = format!("device claim {DEVICE} --data-dir {DATA} --ttl 15m");
        println!("\n$ TOKEN=$(ironroot {line})");
        let out = Command::new(&self.exe)
            .args(line.split_whitespace())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("`ironroot {line}` failed");
        }
        let token = String::from_utf8(out.stdout)?.trim().to_string();
        if token.is_empty() {
            bail!("`ironroot {line}` printed no token");
        }
        println!("(token received: {} characters)", token.len());
        Ok(token)
    }

    /// Step 3: zero-touch enrollment over EST with the claim token.
    fn enroll(&self, url: &str, token: &str) -> Result<Enrolled> {
        section("3. Zero-touch enrollment over EST (RFC 7030)");
        note(
            "The device makes its P-256 key inside its secure element (here the sealed software \
             element: the key exists on disk only encrypted under the device's hardware-unique \
             key, and every signature is made inside the element) and sends only a CSR to /.well-known/est/simpleenroll, with HTTP Basic device-id:claim-token. It \
             trusts only the ironroot root (data/pki/chain.pem), not the system's CAs.",
        );
        let chain_pem = fs::read(self.dir.join(DATA).join("pki").join("chain.pem"))?;
        let trust = TrustAnchor::from_pem(&chain_pem)?;
        let est = EstClient::new(url, trust.clone())?;
        let dev = self.dir.join("device");
        fs::create_dir_all(&dev)?;
        let element = SoftwareElement::new(
            Huk::create(&dev.join("huk"))?,
            KeyStorage::Dir(dev.join("element")),
        );
        let key = element.generate("identity-1")?;
        let request = csr(&key, DEVICE)?;
        let chain = self
            .runtime
            .block_on(est.enroll_with_claim(DEVICE, token, &request))
            .context("enrollment")?
            .chain;
        let leaf = ironroot_pki::ClientIdentity::from_certificate(&chain[0])
            .map_err(|e| anyhow!("the issued certificate: {e}"))?;
        println!(
            "enrolled: certificate for {} with serial {} ({} bytes)",
            leaf.id().as_str(),
            leaf.serial(),
            chain[0].len()
        );
        fs::write(
            dev.join("cert.pem"),
            ironroot_device::certificates_pem(&chain),
        )?;
        println!(
            "the device keeps its key sealed in device/element/identity-1.sealed (bound to \
             device/huk, 0600) and its certificate in device/cert.pem"
        );

        note("The same claim token again: refused, it was single-use.");
        let key2 = element.generate("identity-replay")?;
        match self
            .runtime
            .block_on(est.enroll_with_claim(DEVICE, token, &csr(&key2, DEVICE)?))
        {
            Err(DeviceError::Refused { status, body }) => {
                println!("refused: HTTP {status} {body}")
            }
            Err(e) => bail!("a replayed claim token must be refused by the server, got: {e}"),
            Ok(_) => bail!("a replayed claim token was accepted"),
        }
        element.destroy("identity-replay")?;
        let tls = DeviceTls::new(&trust, chain, key)?;
        Ok(Enrolled { tls })
    }

    /// Stops `ironroot up` with SIGTERM (a clean shutdown) and waits for it.
    fn stop_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `ironroot <line>` after printing it; fails the demo on a non-zero exit.
    fn cmd(&self, line: &str) -> Result<()> {
        if !self.invoke(line)? {
            bail!("`ironroot {line}` failed");
        }
        Ok(())
    }

    /// Runs `ironroot <line>`, which must fail (the demo shows a refusal).
    fn cmd_fails(&self, line: &str) -> Result<()> {
        if self.invoke(line)? {
            bail!("`ironroot {line}` succeeded but must be refused");
        }
        Ok(())
    }

    /// Runs this binary with `line`'s arguments in the demo directory; true on exit status 0.
    fn invoke(&self, line: &str) -> Result<bool> {
        println!("\n$ ironroot {line}");
        let status = Command::new(&self.exe)
            .args(line.split_whitespace())
            .current_dir(&self.dir)
            .env_remove("IRONROOT_DATA_DIR")
            .env_remove("IRONROOT_DATABASE_URL")
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("cannot run `ironroot {line}`"))?;
        Ok(status.success())
    }
}

/// The closing report: each link of the chain and what it showed.
fn report(fleet: &serde_json::Value) {
    section("Report: every link of the chain");
    let attacks = fleet["attacks"].as_array().map_or(0, Vec::len);
    let held = fleet["attacks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["refused"] == true && a["audited"] == true)
        .count();
    for (link, result) in [
        (
            "firmware signing",
            "signed; a one-byte tamper refused".to_owned(),
        ),
        (
            "secure boot",
            "verified and measured; downgrade refused".to_owned(),
        ),
        (
            "provisioning (EST)",
            "enrolled; replayed claim token refused".to_owned(),
        ),
        (
            "least privilege (MQTT)",
            "own topics accepted; others refused".to_owned(),
        ),
        (
            "revocation",
            "live session cut; handshake refused".to_owned(),
        ),
        (
            "fleet",
            format!(
                "{} of {} devices booted {} through secure boot and reported it, {} connected, \
                 {} messages acknowledged",
                fleet["booted"],
                fleet["devices"],
                fleet["firmware_version"].as_str().unwrap_or("-"),
                fleet["connected"],
                fleet["messages"]
            ),
        ),
        (
            "attacks",
            format!("{held} of {attacks} refused and audited"),
        ),
        (
            "audit log",
            "Merkle tree and signed checkpoints verified".to_owned(),
        ),
    ] {
        println!("  {link:<24} {result}");
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// 32 random bytes from the OS, hex-encoded.
fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file readable only by its owner.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

/// A request whose verdict the demo shows.
enum Op<'a> {
    Publish(&'a str, &'a [u8]),
    Subscribe(&'a str),
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn note(text: &str) {
    println!("\n# {text}");
}

/// Writes a stand-in firmware binary of `len` bytes (a deterministic pattern, so runs repeat).
fn write_firmware(path: &Path, len: usize, seed: u64) -> Result<()> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            // xorshift64: cheap, deterministic filler.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
