//! `ironroot agent`: one device (a Linux gateway) running the device lifecycle for real, with
//! its key sealed in the software element of its state directory (thin over `ironroot-device`).
//! It bootstraps with a claim token or a factory certificate (`--factory-csr` makes the factory
//! key in the element on the manufacturing line, `--factory-cert` enrolls with it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ironroot_device::command::{CommandError, VerifiedCommand};
use ironroot_device::core::{Backoff, Phase};
use ironroot_device::{
    Agent, AgentConfig, AgentObserver, Bootstrap, DeviceError, DeviceTls, EstClient, MqttTarget,
    Resume, TrustAnchor,
};
use ironroot_element::{
    ElementError, Huk, KeyStorage, Pin, Pkcs11Element, SecureElement, SoftwareElement,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

/// The saved certificate chain in the state directory.
const CHAIN_FILE: &str = "identity.pem";
/// The saved lifecycle state (key label, issuance time, clock offset).
const STATE_FILE: &str = "identity.json";
/// The factory certificate, kept after `--factory-cert` so later starts can re-enroll with it.
const FACTORY_CERT_FILE: &str = "factory.pem";
/// Label of the factory key in the element (`--factory-csr` makes it, `--factory-cert` uses it).
const FACTORY_KEY: &str = "factory";

/// Run this machine as an ironroot device: make the key inside the device's secure element,
/// enroll over EST with a claim token, connect over mutual-TLS MQTT, send telemetry to
/// devices/<id>/telemetry, renew at two thirds of the certificate's life with a fresh key,
/// and reconnect with exponential backoff and full jitter after any outage. Restarts resume
/// from --state-dir. Stops on SIGINT/SIGTERM. A decommission command signed under the
/// trusted root (`ironroot device decommission`) destroys the keys in the element, removes
/// the saved identity and exits 0; forged, replayed or expired commands are logged and ignored.
///
/// Instead of a claim token a device can bootstrap with a factory certificate: on the
/// manufacturing line, `--factory-csr` makes the factory key inside the element and writes its
/// CSR (then exits); the operator issues it (`ironroot ca issue --factory`); `--factory-cert`
/// then enrolls with it, and re-enrolls with it if the operational certificate expired while
/// the device was offline (it is kept in --state-dir for that).
///
/// Example: `ironroot agent --device-id gw-1 --server https://ironroot.example:8443 --mqtt ironroot.example:8883 --ca-file chain.pem --claim-token-file token`
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The device id (registered by the operator; the certificate's CN and the MQTT client id).
    #[arg(long, value_name = "ID")]
    device_id: String,
    /// URL of the ironroot server's HTTPS API (EST), e.g. https://127.0.0.1:8443.
    #[arg(
        long,
        env = "IRONROOT_SERVER",
        value_name = "URL",
        required_unless_present = "factory_csr"
    )]
    server: Option<String>,
    /// The broker, HOST:PORT (HOST must be a name or address in the broker's certificate).
    #[arg(
        long,
        value_name = "HOST:PORT",
        required_unless_present = "factory_csr"
    )]
    mqtt: Option<String>,
    /// The ironroot CA chain the device trusts (`ironroot ca chain`); nothing else is trusted.
    #[arg(long, value_name = "FILE", required_unless_present = "factory_csr")]
    ca_file: Option<PathBuf>,
    /// File holding the one-time claim token (first enrollment only; or IRONROOT_CLAIM_TOKEN).
    #[arg(long, value_name = "FILE")]
    claim_token_file: Option<PathBuf>,
    /// Manufacturing: generate the factory key inside the element (label `factory`; an existing
    /// one is reused, never replaced), write its CSR (PEM, CN = --device-id) here, and exit.
    /// Issue it with `ironroot ca issue --factory`.
    #[arg(
        long,
        value_name = "OUT.pem",
        conflicts_with_all = ["factory_cert", "claim_token_file"]
    )]
    factory_csr: Option<PathBuf>,
    /// Bootstrap with this factory certificate (`ironroot ca issue --factory`) and the
    /// element's `factory` key instead of a claim token; also used to re-enroll after the
    /// operational certificate expired offline. Copied to <state-dir>/factory.pem, which later
    /// starts use when this flag is absent.
    #[arg(long, value_name = "CERT.pem", conflicts_with = "claim_token_file")]
    factory_cert: Option<PathBuf>,
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
    /// Whether the current session's first accepted telemetry was logged (once per session).
    telemetry_logged: AtomicBool,
}

impl AgentObserver for Log {
    fn enrolled(&self, device: &str, renewal: bool, took: Duration) {
        let what = if renewal { "renewed" } else { "enrolled" };
        eprintln!("{device}: {what} in {} ms", took.as_millis());
    }

    fn connected(&self, device: &str, took: Duration) {
        self.telemetry_logged.store(false, Ordering::Relaxed);
        eprintln!("{device}: connected in {} ms", took.as_millis());
    }

    fn published(&self, device: &str, latency: Duration, accepted: bool) {
        if accepted && !self.telemetry_logged.swap(true, Ordering::Relaxed) {
            eprintln!("{device}: telemetry accepted in {} ms", latency.as_millis());
        }
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

/// Removes the saved certificates (operational and factory) and lifecycle state after a
/// decommission (the keys are gone from the element already), so a restart does not try to
/// resume or re-enroll a dead identity.
fn forget_identity(dir: &Path) -> Result<()> {
    for name in [STATE_FILE, CHAIN_FILE, FACTORY_CERT_FILE] {
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

/// `--factory-csr`: the factory key made inside the element (or the one already there), and
/// its CSR written as PEM. The key never leaves the element; only the CSR is written.
fn factory_csr(args: &AgentArgs, element: &dyn SecureElement, out: &Path) -> Result<ExitCode> {
    let key = match element.generate(FACTORY_KEY) {
        Ok(k) => k,
        Err(ElementError::KeyExists(_)) => {
            eprintln!(
                "{}: reusing the factory key already in the element",
                args.device_id
            );
            element.open(FACTORY_KEY)?
        }
        Err(e) => return Err(e.into()),
    };
    let der = ironroot_device::csr(&key, &args.device_id)?;
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    ironroot_fs::write_atomically(out, pem.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "{}: factory key '{FACTORY_KEY}' in {}; CSR written to {} (issue it with `ironroot ca issue --factory`)",
        args.device_id,
        element.describe(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The factory certificate to bootstrap with: `--factory-cert` (then kept in the state
/// directory), else the one kept by an earlier start, else none.
fn factory_chain(args: &AgentArgs) -> Result<Option<Vec<CertificateDer<'static>>>> {
    let kept = args.state_dir.join(FACTORY_CERT_FILE);
    let path = match &args.factory_cert {
        Some(p) => p.clone(),
        None if kept.exists() => kept.clone(),
        None => return Ok(None),
    };
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds a bad certificate", path.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    if args.factory_cert.is_some() {
        ironroot_fs::write_atomically(&kept, &text)
            .with_context(|| format!("cannot write {}", kept.display()))?;
    }
    Ok(Some(chain))
}

/// How the device bootstraps: a factory certificate with the element's factory key, or a
/// claim token (none needed when it resumes a saved identity).
fn bootstrap(
    args: &AgentArgs,
    element: &Arc<dyn SecureElement>,
    trust: &TrustAnchor,
    resuming: bool,
) -> Result<Bootstrap> {
    if args.claim_token_file.is_none()
        && let Some(chain) = factory_chain(args)?
    {
        let key = element.open(FACTORY_KEY).with_context(|| {
            format!(
                "no factory key in {}: make it with --factory-csr first",
                element.describe()
            )
        })?;
        return Ok(Bootstrap::Factory(Arc::new(DeviceTls::new(
            trust, chain, key,
        )?)));
    }
    let token = match (
        resuming,
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
        (true, _, None) => Zeroizing::new(String::new()),
        (false, _, None) => bail!(
            "this device has no identity yet: give --claim-token-file (or IRONROOT_CLAIM_TOKEN) or --factory-cert"
        ),
    };
    Ok(Bootstrap::ClaimToken(token))
}

/// Runs `ironroot agent`.
pub fn run(args: AgentArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create {}", args.state_dir.display()))?;
    let element = open_element(&args)?;
    let element_name = element.describe();
    eprintln!("{}: keys in {element_name}", args.device_id);
    if let Some(out) = &args.factory_csr {
        return factory_csr(&args, element.as_ref(), out);
    }
    let (Some(server), Some(mqtt_addr), Some(ca_file)) = (&args.server, &args.mqtt, &args.ca_file)
    else {
        bail!("give --server, --mqtt and --ca-file");
    };
    let trust = TrustAnchor::from_pem(
        &std::fs::read(ca_file).with_context(|| format!("cannot read {}", ca_file.display()))?,
    )?;
    let Some((host, port)) = mqtt_addr.rsplit_once(':') else {
        bail!("--mqtt must be HOST:PORT, got {mqtt_addr:?}");
    };
    let mqtt = MqttTarget {
        host: host.trim_matches(['[', ']']).to_owned(),
        port: port
            .parse()
            .with_context(|| format!("bad port in {mqtt_addr:?}"))?,
    };
    let saved = load(&args.state_dir)?;
    let bootstrap = bootstrap(&args, &element, &trust, saved.is_some())?;
    let cfg = AgentConfig {
        device_id: args.device_id.clone(),
        est: EstClient::new(server, trust.clone())?,
        trust,
        mqtt,
        bootstrap,
        telemetry_interval: Some(args.telemetry_interval),
        backoff: Backoff::default(),
        clock_skew: 0,
    };
    let observer = Arc::new(Log {
        state_dir: args.state_dir.clone(),
        telemetry_logged: AtomicBool::new(false),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let kept = element.clone();
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
            // The factory credential goes too: a decommissioned device cannot re-enroll.
            let _ = kept.destroy(FACTORY_KEY);
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
