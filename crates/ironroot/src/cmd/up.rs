//! `ironroot up`: run the ironroot server (HTTPS provisioning, EST, operator API) and the
//! mutual-TLS MQTT broker in one process on a data directory, creating the CA on the first
//! start.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use ironroot_node::{Node, NodeConfig, NodeSecrets, Overrides};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, OnlineKeyBackend, Passphrase,
};

/// File in the data directory holding the MQTT listener's address while `ironroot up` runs.
pub use ironroot_node::MQTT_ADDR_FILE;

/// Run the ironroot server (HTTPS API and MQTT broker) until Ctrl-C / SIGTERM.
///
/// Settings come from built-in defaults, then --config FILE (TOML: every flag below, plus
/// [api.limits], [api.enrollment] and [mqtt.limits]), then environment variables, then flags.
/// --print-config shows the result (secrets redacted) and exits.
///
/// On the first start (no CA in <data-dir>/pki) it creates one: the root passphrase comes from
/// IRONROOT_ROOT_PASSPHRASE, or is generated and printed ONCE. The online CA keys are encrypted
/// with IRONROOT_CA_PASSPHRASE, or a generated passphrase kept in <data-dir>/pki/online-passphrase.
/// It writes <data-dir>/admin.token (mode 0600; operator commands use it) and
/// <data-dir>/server.url (how `ironroot device …` finds the server).
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Configuration file (TOML); see `ironroot up --print-config` for every key.
    #[arg(long, env = "IRONROOT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration (defaults, file, environment, flags) as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Data directory (CA, registry database, audit log, admin token) [default: ./ironroot-data].
    #[arg(long, env = "IRONROOT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Use this PostgreSQL database for the registry and audit log instead of SQLite in the
    /// data directory (postgres://user@host/db).
    #[arg(long, env = "IRONROOT_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// HTTPS address of the provisioning, EST and operator API [default: 127.0.0.1:8443].
    #[arg(long, env = "IRONROOT_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// MQTT (TLS) address of the broker [default: 127.0.0.1:8883].
    #[arg(long, env = "IRONROOT_MQTT_ADDR")]
    mqtt_addr: Option<SocketAddr>,
    /// Host name or IP address the server certificate is issued for (repeatable; default:
    /// localhost and 127.0.0.1).
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// File holding the passphrase of the online CA keys (else IRONROOT_CA_PASSPHRASE, else
    /// <data-dir>/pki/online-passphrase).
    #[arg(long, env = "IRONROOT_CA_PASSPHRASE_FILE")]
    ca_passphrase_file: Option<PathBuf>,
}

/// Runs `ironroot up`.
pub fn run(args: UpArgs) -> Result<()> {
    let mut overrides = Overrides::default();
    overrides.data_dir = args.data_dir;
    overrides.database_url = args.database_url;
    overrides.api_addr = args.api_addr;
    overrides.mqtt_addr = args.mqtt_addr;
    overrides.hostnames = args.hostnames;
    overrides.ca_passphrase_file = args.ca_passphrase_file;
    let config = NodeConfig::resolve(args.config.as_deref(), &overrides)?;
    let env_passphrase = std::env::var_os("IRONROOT_CA_PASSPHRASE");
    if args.print_config {
        if config.ca_passphrase_file.is_none() && env_passphrase.is_some() {
            println!("# CA passphrase: IRONROOT_CA_PASSPHRASE (<redacted>)");
        }
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let dir = CaDirectory::new(&config.data_dir);
    if !dir.is_initialized() {
        init_ca(&dir)?;
    }
    let secrets = NodeSecrets::resolve(&config, env_passphrase)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = Node::start(&config, secrets).await?;
        let url = node.server().url();
        let chain = config.data_dir.join("pki").join("chain.pem");
        println!("ironroot is up.");
        println!("  HTTPS API     {url}");
        println!("  EST           {url}/.well-known/est/");
        println!("  OpenAPI       {url}/api/openapi.json");
        println!("  CA chain      {}   (clients trust this)", chain.display());
        println!(
            "  admin token   {}   (mode 0600; `ironroot device …` uses it)",
            config
                .data_dir
                .join(ironroot_server::ADMIN_TOKEN_FILE)
                .display()
        );
        println!(
            "  MQTT          mqtts://{}   (mutual TLS; device certificates from this CA)",
            node.mqtt_addr()
        );
        println!("Press Ctrl-C to stop.");
        ironroot_server::wait_for_signal().await;
        println!("shutting down");
        node.shutdown().await;
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
