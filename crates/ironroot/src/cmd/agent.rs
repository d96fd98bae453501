//! `ironroot agent`: one device (a Linux gateway) running the device lifecycle for real, with
//! its key sealed in the software element of its state directory (thin over `ironroot-device`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ironroot_device::command::{CommandError, VerifiedCommand};
use ironroot_device::core::{Backoff, Phase};
use ironroot_device::{
    Agent, AgentConfig, AgentObserver, Bootstrap, DeviceError, EstClient, MqttTarget, Resume,
    TrustAnchor,
};
use ironroot_element::{Huk, KeyStorage, Pin, Pkcs11Element, SecureElement, SoftwareElement};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

/// The saved certificate chain in the state directory.
const CHAIN_FILE: &str = "identity.pem";
/// The saved lifecycle state (key label, issuance time, clock offset).
const STATE_FILE: &str = "identity.json";

/// Run this machine as an ironroot device: make the key inside the device's secure element,
/// enroll over EST with a claim token, connect over mutual-TLS MQTT, send telemetry to
/// devices/<id>/telemetry, renew at two thirds of the certificate's life with a fresh key,
/// and reconnect with exponential backoff and full jitter after any outage. Restarts resume
/// from --state-dir. Stops on SIGINT/SIGTERM. A decommission command signed under the
/// trusted root (`ironroot device decommission`) destroys the keys in the element, removes
/// the saved identity and exits 0; forged, replayed or expired commands are logged and ignored.
///
/// Example: `ironroot agent --device-id gw-1 --server https://ironroot.example:8443 --mqtt ironroot.example:8883 --ca-file chain.pem --claim-token-file token`
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The device id (registered by the operator; the certificate's CN and the MQTT client id).
    #[arg(long, value_name = "ID")]
    device_id: String,
    /// URL of the ironroot server's HTTPS API (EST), e.g. https://127.0.0.1:8443.
    #[arg(long, env = "IRONROOT_SERVER", value_name = "URL")]
    server: String,
    /// The broker, HOST:PORT (HOST must be a name or address in the broker's certificate).
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: String,
    /// The ironroot CA chain the device trusts (`ironroot ca chain`); nothing else is trusted.
    #[arg(long, value_name = "FILE")]
    ca_file: PathBuf,
    /// File holding the one-time claim token (first enrollment only; or IRONROOT_CLAIM_TOKEN).
    #[arg(long, value_name = "FILE")]
    claim_token_file: Option<PathBuf>,
    /// Device state: sealed keys (element/), certificate, lifecycle state.
    #[arg(long, default_value = "./ironroot-device", value_name = "DIR")]
    state_dir: PathBuf,
    /// The hardware-unique key the element seals keys under (default: <state-dir>/huk, created
    /// on first start). Keep it apart from the state directory where the platform allows.
    #[arg(long, value_name = "FILE")]
    huk_file: Option<PathBuf>,
    /// PKCS#11 module of the device's secure element: a TPM 2.0 through tpm2-pkcs11
    /// (/usr/lib/x86_64-linux-gnu/libtpm2_pkcs11.so.1), a hardware token, SoftHSM2. Without it,
    /// keys are sealed in the software element of --state-dir.
    #[arg(long, value_name = "PATH")]
    pkcs11_module: Option<PathBuf>,
    /// Label of the PKCS#11 token holding the device keys.
    #[arg(long, default_value = "device", value_name = "LABEL")]
    pkcs11_token: String,
    /// File with the token's user PIN (else IRONROOT_PKCS11_PIN).
    #[arg(long, value_name = "FILE")]
    pkcs11_pin_file: Option<PathBuf>,
    /// Telemetry period while connected.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    telemetry_interval: Duration,
}

/// Logs what the agent does on stderr and saves each new identity in the state directory.
struct Log {
    state_dir: PathBuf,
}

impl AgentObserver for Log {
    fn enrolled(&self, device: &str, renewal: bool, took: Duration) {
        let what = if renewal { "renewed" } else { "enrolled" };
        eprintln!("{device}: {what} in {} ms", took.as_millis());
    }

    fn connected(&self, device: &str, took: Duration) {
        eprintln!("{device}: connected in {} ms", took.as_millis());
    }

    fn failed(&self, device: &str, step: &'static str, error: &DeviceError) {
        eprintln!("{device}: {step} failed: {error}; retrying with backoff");
    }

    fn command_accepted(&self, device: &str, command: &VerifiedCommand) {
        eprintln!(
            "{device}: signed {} command {} verified",
            command.kind().as_str(),
            command.id()
        );
    }

    fn command_refused(&self, device: &str, error: &CommandError) {
        eprintln!("{device}: ignored a message on the commands topic: {error}");
    }

    fn certificate(&self, device: &str, state: &Resume) {
        if let Err(e) = save(&self.state_dir, state) {
            eprintln!("{device}: cannot save the new identity: {e:#}");
        }
    }
}

fn save(dir: &Path, state: &Resume) -> Result<()> {
    let pem = ironroot_device::certificates_pem(&state.chain);
    ironroot_fs::write_atomically(&dir.join(CHAIN_FILE), pem.as_bytes())?;
    let json = serde_json::json!({
        "key_label": state.key_label,
        "issued_at": state.issued_at,
        "clock_offset": state.clock_offset,
    });
    ironroot_fs::write_atomically(&dir.join(STATE_FILE), json.to_string().as_bytes())?;
    Ok(())
}

fn load(dir: &Path) -> Result<Option<Resume>> {
    let (chain_path, state_path) = (dir.join(CHAIN_FILE), dir.join(STATE_FILE));
    if !state_path.exists() {
        return Ok(None);
    }
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path)?)
        .with_context(|| format!("{} is not valid JSON", state_path.display()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&chain_path)
        .with_context(|| format!("cannot read {}", chain_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds a bad certificate", chain_path.display()))?;
    let (Some(key_label), Some(issued_at), Some(clock_offset)) = (
        state["key_label"].as_str(),
        state["issued_at"].as_i64(),
        state["clock_offset"].as_i64(),
    ) else {
        bail!(
            "{} lacks key_label, issued_at or clock_offset",
            state_path.display()
        );
    };
    Ok(Some(Resume {
        chain,
        key_label: key_label.to_owned(),
        issued_at,
        clock_offset,
    }))
}

/// Removes the saved certificate and lifecycle state after a decommission (the keys are gone
/// from the element already), so a restart does not try to resume a dead identity.
fn forget_identity(dir: &Path) -> Result<()> {
    for name in [STATE_FILE, CHAIN_FILE] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    Ok(())
}

/// The device's element: the PKCS#11 token when a module is given, else the sealed software
/// element of the state directory.
fn open_element(args: &AgentArgs) -> Result<Arc<dyn SecureElement>> {
    if let Some(module) = &args.pkcs11_module {
        let pin = match (&args.pkcs11_pin_file, std::env::var("IRONROOT_PKCS11_PIN")) {
            (Some(f), _) => Pin::from_file(f)
                .with_context(|| format!("cannot read the PIN file {}", f.display()))?,
            (None, Ok(p)) => Pin::new(p),
            (None, Err(_)) => {
                bail!("--pkcs11-module needs --pkcs11-pin-file (or IRONROOT_PKCS11_PIN)")
            }
        };
        return Ok(Arc::new(Pkcs11Element::open(
            module,
            &args.pkcs11_token,
            &pin,
        )?));
    }
    let huk_path = args
        .huk_file
        .clone()
        .unwrap_or_else(|| args.state_dir.join("huk"));
    let huk = if huk_path.exists() {
        Huk::load(&huk_path)?
    } else {
        Huk::create(&huk_path)?
    };
    Ok(Arc::new(SoftwareElement::new(
        huk,
        KeyStorage::Dir(args.state_dir.join("element")),
    )))
}

/// Runs `ironroot agent`.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create {}", args.state_dir.display()))?;
    let element = open_element(&args)?;
    let element_name = element.describe();
    eprintln!("{}: keys in {element_name}", args.device_id);
    let trust = TrustAnchor::from_pem(
        &std::fs::read(&args.ca_file)
            .with_context(|| format!("cannot read {}", args.ca_file.display()))?,
    )?;
    let Some((host, port)) = args.mqtt.rsplit_once(':') else {
        bail!("--mqtt must be HOST:PORT, got {:?}", args.mqtt);
    };
    let mqtt = MqttTarget {
        host: host.trim_matches(['[', ']']).to_owned(),
        port: port
            .parse()
            .with_context(|| format!("bad port in {:?}", args.mqtt))?,
    };
    let saved = load(&args.state_dir)?;
    let token = match (
        &saved,
        std::env::var("IRONROOT_CLAIM_TOKEN"),
        &args.claim_token_file,
    ) {
        (_, Ok(t), _) => Zeroizing::new(t),
        (_, _, Some(f)) => Zeroizing::new(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim()
                .to_owned(),
        ),
        (Some(_), _, None) => Zeroizing::new(String::new()),
        (None, _, None) => bail!(
            "this device has no identity yet: give --claim-token-file (or IRONROOT_CLAIM_TOKEN)"
        ),
    };
    let cfg = AgentConfig {
        device_id: args.device_id.clone(),
        est: EstClient::new(&args.server, trust.clone())?,
        trust,
        mqtt,
        bootstrap: Bootstrap::ClaimToken(token),
        telemetry_interval: Some(args.telemetry_interval),
        backoff: Backoff::default(),
        clock_skew: 0,
    };
    let observer = Arc::new(Log {
        state_dir: args.state_dir.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut agent = match saved {
            Some(state) => {
                eprintln!("{}: resuming with key {}", args.device_id, state.key_label);
                Agent::resume(cfg, element, observer, state)?
            }
            None => Agent::new(cfg, element, observer),
        };
        agent.run(shutdown()).await;
        if agent.phase() == Phase::Decommissioned {
            forget_identity(&args.state_dir)?;
            eprintln!(
                "{}: decommissioned by a signed command: keys destroyed in {}, identity removed from {}; exiting",
                args.device_id,
                element_name,
                args.state_dir.display()
            );
        } else {
            eprintln!("{}: stopped", args.device_id);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
