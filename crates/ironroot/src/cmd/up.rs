//! `ironroot up`: run the ironroot server (HTTPS provisioning, EST, operator API) and the
//! mutual-TLS MQTT broker in one process on a data directory, creating the CA on the first
//! start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Args;
use ironroot_control::{MqttPlane, MqttPlaneOptions, TlsIdentity};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, OnlineKeyBackend, Passphrase,
};
use ironroot_server::{Server, ServerConfig};

/// File in the data directory holding the MQTT listener's address while `ironroot up` runs.
pub const MQTT_ADDR_FILE: &str = "mqtt.addr";

/// Run the ironroot server (HTTPS API and MQTT broker) until Ctrl-C / SIGTERM.
///
/// On the first start (no CA in <data-dir>/pki) it creates one: the root passphrase comes from
/// IRONROOT_ROOT_PASSPHRASE, or is generated and printed ONCE. The online CA keys are encrypted
/// with IRONROOT_CA_PASSPHRASE, or a generated passphrase kept in <data-dir>/pki/online-passphrase.
/// It writes <data-dir>/admin.token (mode 0600; operator commands use it) and
/// <data-dir>/server.url (how `ironroot device …` finds the server).
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Data directory (CA, registry database, audit log, admin token).
    #[arg(long, env = "IRONROOT_DATA_DIR", default_value = "./ironroot-data")]
    data_dir: PathBuf,
    /// Use this PostgreSQL database for the registry and audit log instead of SQLite in the
    /// data directory (postgres://user@host/db).
    #[arg(long, env = "IRONROOT_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// HTTPS address of the provisioning, EST and operator API.
    #[arg(long, default_value = "127.0.0.1:8443")]
    api_addr: SocketAddr,
    /// MQTT (TLS) address of the broker.
    #[arg(long, default_value = "127.0.0.1:8883")]
    mqtt_addr: SocketAddr,
    /// Host name or IP address the server certificate is issued for (repeatable; default:
    /// localhost and 127.0.0.1).
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// File holding the passphrase of the online CA keys (else IRONROOT_CA_PASSPHRASE, else
    /// <data-dir>/pki/online-passphrase).
    #[arg(long)]
    ca_passphrase_file: Option<PathBuf>,
    /// File holding the user PIN of the PKCS#11 token with the online CA keys (else
    /// IRONROOT_PKCS11_PIN); needed when `ironroot ca init --pkcs11-module` put them there.
    #[arg(long, value_name = "FILE")]
    pkcs11_pin_file: Option<PathBuf>,
}

/// Runs `ironroot up`.
pub fn run(args: UpArgs) -> Result<()> {
    let dir = CaDirectory::new(&args.data_dir);
    if !dir.is_initialized() {
        init_ca(&dir)?;
    }
    let mut config = ServerConfig::new(&args.data_dir);
    config.database_url = args.database_url.clone();
    config.api_addr = args.api_addr;
    if !args.hostnames.is_empty() {
        config.hostnames = args.hostnames.clone();
    }
    config.ca_passphrase = match (
        &args.ca_passphrase_file,
        std::env::var_os("IRONROOT_CA_PASSPHRASE"),
    ) {
        (Some(f), _) => Some(zeroize::Zeroizing::new(
            std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        )),
        (None, Some(v)) => Some(zeroize::Zeroizing::new(v.into_encoded_bytes())),
        (None, None) => None,
    };
    config.pkcs11_pin = crate::cmd::ca::read_pkcs11_pin(args.pkcs11_pin_file.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::start(config)
            .await
            .context("cannot start the server")?;
        let chain = args.data_dir.join("pki").join("chain.pem");
        println!("ironroot is up.");
        println!("  HTTPS API     {}", server.url());
        println!("  EST           {}/.well-known/est/", server.url());
        println!("  OpenAPI       {}/api/openapi.json", server.url());
        println!("  CA chain      {}   (clients trust this)", chain.display());
        println!(
            "  admin token   {}   (mode 0600; `ironroot device …` uses it)",
            args.data_dir
                .join(ironroot_server::ADMIN_TOKEN_FILE)
                .display()
        );
        // The MQTT plane: same registry, audit log and server certificate; it follows the
        // change feed, so revocations and policy changes from any process reach live sessions.
        let (cert, key) = server.tls_files();
        let tls = TlsIdentity::from_files(
            &CaDirectory::new(&args.data_dir),
            cert,
            key,
            time::OffsetDateTime::now_utc(),
        )
        .context("cannot load the server certificate for MQTT")?;
        let (used_tx, mut used_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let mut opts = MqttPlaneOptions::new(
            server.store().clone(),
            server.audit().clone(),
            tls,
            args.mqtt_addr,
        );
        opts.on_connect = Some(Arc::new(move |_device: &str, serial: &[u8]| {
            let _ = used_tx.send(serial.to_vec());
        }));
        let plane = match MqttPlane::start(opts).await {
            Ok(p) => p,
            Err(e) => {
                server.shutdown().await;
                return Err(anyhow::Error::new(e).context("cannot start the MQTT broker"));
            }
        };
        println!(
            "  MQTT          mqtts://{}   (mutual TLS; device certificates from this CA)",
            plane.mqtt_addr()
        );
        std::fs::write(
            args.data_dir.join(MQTT_ADDR_FILE),
            format!("{}\n", plane.mqtt_addr()),
        )
        .context("cannot write the MQTT address file")?;
        println!("Press Ctrl-C to stop.");
        let signal = ironroot_server::wait_for_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => break,
                Some(serial) = used_rx.recv() => {
                    // First use of a certificate: retires the previous one after a rotation.
                    if let Ok(serial) = ironroot_pki::Serial::from_be_bytes(&serial) {
                        server.certificate_used(&serial).await;
                    }
                }
            }
        }
        println!("shutting down");
        plane.shutdown().await;
        let _ = std::fs::remove_file(args.data_dir.join(MQTT_ADDR_FILE));
        server.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })
}

fn init_ca(dir: &CaDirectory) -> Result<()> {
    let (root_passphrase, generated) = match std::env::var_os("IRONROOT_ROOT_PASSPHRASE") {
        Some(v) => (Passphrase::new(v.into_encoded_bytes())?, false),
        None => (Passphrase::random()?, true),
    };
    let shown = generated.then(|| String::from_utf8_lossy(root_passphrase.expose()).into_owned());
    let online = match std::env::var_os("IRONROOT_CA_PASSPHRASE") {
        Some(v) => Some(OnlineKeyBackend::EncryptedFile(Passphrase::new(
            v.into_encoded_bytes(),
        )?)),
        None => None,
    };
    dir.init(
        InitOptions {
            root_passphrase,
            online,
            kdf: KdfParams::DEFAULT,
            hierarchy: HierarchyPolicy::default(),
            operator: DeviceId::parse("admin").context("operator name")?,
        },
        time::OffsetDateTime::now_utc(),
    )
    .context("cannot create the certificate authority")?;
    println!(
        "Created a certificate authority in {}.",
        dir.path().display()
    );
    println!(
        "  The ROOT KEY is {} — it belongs OFFLINE: move it to offline storage;\n  \
         the server never needs it (only `ironroot ca rotate-intermediate` / `revoke-intermediate` do).",
        dir.path().join("root.key.enc").display()
    );
    if let Some(p) = shown {
        println!("  Root key passphrase (shown ONCE, write it down): {p}");
    }
    Ok(())
}
