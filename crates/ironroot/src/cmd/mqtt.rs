//! `ironroot mqtt serve`: run the mutual-TLS MQTT broker of a data directory on its own, until
//! `ironroot up` runs it beside the provisioning API.
//!
//! The broker follows the registry: `ironroot policy create/attach`, device state changes and
//! certificate revocations made by any process reach live sessions within a second.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ironroot_audit::Audit;
use ironroot_control::{MqttPlane, MqttPlaneOptions, TlsIdentity};
use ironroot_pki::CaDirectory;
use time::OffsetDateTime;

use crate::cmd::ca::OnlineKeyArgs;
use crate::cmd::device::StoreArgs;

/// Run the MQTT broker of a data directory (development; `ironroot up` will include it).
#[derive(Debug, Args)]
pub struct MqttArgs {
    #[command(subcommand)]
    command: MqttCommand,
}

#[derive(Debug, Subcommand)]
enum MqttCommand {
    /// Serve MQTT over mutual TLS: devices connect with certificates issued by this data
    /// directory's CA; policies, device states and revocations come from the registry and
    /// follow it live. Broker events go into the audit log. Stops on Ctrl-C.
    ///
    /// Needs `ironroot ca init` first. Without --cert/--key a server certificate for the
    /// --name values is issued at start from the online CA (unlocked with
    /// --ca-passphrase-file, IRONROOT_CA_PASSPHRASE or <data-dir>/pki/online-passphrase).
    ///
    /// Example: ironroot mqtt serve --data-dir D --mqtt-addr 127.0.0.1:8883
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    online: OnlineKeyArgs,
    /// Address of the mutual-TLS MQTT listener.
    #[arg(long, default_value = "0.0.0.0:8883")]
    mqtt_addr: SocketAddr,
    /// Host name or IP address for the issued server certificate (repeatable).
    #[arg(long = "name", default_values = ["localhost", "127.0.0.1"])]
    names: Vec<String>,
    /// Server certificate chain (PEM, from `ironroot ca server-cert`) instead of issuing one.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Broker worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Take the broker limits from the `[mqtt.limits]` table of this node configuration file
    /// (the same file `ironroot up --config` reads).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs `ironroot mqtt ...`.
pub fn run(args: MqttArgs) -> anyhow::Result<()> {
    let MqttCommand::Serve(a) = args.command;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(a))
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let ca = CaDirectory::new(&a.store.data_dir);
    if !ca.is_initialized() {
        anyhow::bail!(
            "no CA in {} (run `ironroot ca init --data-dir {}` first)",
            ca.path().display(),
            a.store.data_dir.display()
        );
    }
    let tls = match (&a.cert, &a.key) {
        (Some(cert), Some(key)) => TlsIdentity::from_files(&ca, cert, key, now)?,
        _ => {
            let secrets = crate::cmd::ca::online_secrets(&a.online, &ca)?;
            let online = ca
                .open_online(&secrets, now)
                .context("cannot unlock the online CA to issue the broker's certificate")?;
            TlsIdentity::issue(&online, &a.names, now)?
        }
    };
    let store = a.store.open(true).await?;
    let audit = Audit::open_store(&store, &a.store.data_dir)
        .await
        .context("cannot open the audit log")?;
    let mut opts = MqttPlaneOptions::new(store.clone(), Arc::new(audit), tls, a.mqtt_addr);
    opts.workers = a.workers;
    if let Some(file) = &a.config {
        opts.limits = ironroot_node::NodeConfig::load(file)?
            .mqtt
            .limits
            .to_broker();
    }
    let plane = MqttPlane::start(opts).await?;
    println!(
        "ironroot MQTT (mutual TLS) listening on {}; registry {}; Ctrl-C stops",
        plane.mqtt_addr(),
        a.store.describe()
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    eprintln!("stopping");
    plane.shutdown().await;
    store.close().await;
    Ok(())
}
