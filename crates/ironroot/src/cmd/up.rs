//! `ironroot up`: run the ironroot server (HTTPS provisioning, EST, operator API) and the
//! mutual-TLS MQTT broker in one process on a data directory, creating the CA on the first
//! start.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use ironroot_node::{MqttLimits, Node, NodeConfig, NodeSecrets, Overrides};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, OnlineKeyBackend, Passphrase,
};

/// File in the data directory holding the MQTT listener's address while `ironroot up` runs.
pub use ironroot_node::MQTT_ADDR_FILE;

/// Run the ironroot server (HTTPS API and MQTT broker) until Ctrl-C / SIGTERM.
///
/// Settings come from built-in defaults, then --config FILE (TOML: every flag below, plus
/// [api.limits], [api.enrollment], [mqtt.limits] and its [[mqtt.limits.override]] tables), then
/// environment variables, then flags.
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
    /// File holding the user PIN of the PKCS#11 token with the online CA keys (else
    /// IRONROOT_PKCS11_PIN); needed when `ironroot ca init --pkcs11-module` put them there.
    #[arg(long, env = "IRONROOT_PKCS11_PIN_FILE", value_name = "FILE")]
    pkcs11_pin_file: Option<PathBuf>,
    /// [mqtt.limits], one flag per key (same rules and errors as the file).
    #[command(flatten)]
    mqtt_limits: MqttLimitFlags,
}

/// `--mqtt-<key>` for every `[mqtt.limits]` key: a rate is `off` or PER_SECOND/BURST
/// (`5000/10000`), a duration human text (`10s`, `24h`), a count an integer. A flag overrides
/// the file; `--print-config` shows the result. Per-identity overrides live in the file only
/// (`[[mqtt.limits.override]]`).
#[derive(Debug, Args)]
#[command(next_help_heading = "MQTT limits ([mqtt.limits])")]
struct MqttLimitFlags {
    /// Largest MQTT packet accepted, in bytes [default: 131072].
    #[arg(long, env = "IRONROOT_MQTT_MAX_PACKET_SIZE", value_name = "BYTES")]
    mqtt_max_packet_size: Option<String>,
    /// Unacknowledged QoS 1/2 messages in flight per connection and direction [default: 32].
    #[arg(long, env = "IRONROOT_MQTT_INFLIGHT_WINDOW", value_name = "N")]
    mqtt_inflight_window: Option<String>,
    /// Messages queued for one session [default: 1000].
    #[arg(long, env = "IRONROOT_MQTT_MAX_QUEUED_MESSAGES", value_name = "N")]
    mqtt_max_queued_messages: Option<String>,
    /// How long a QoS 1/2 publisher waits for room in a full subscriber queue [default: 10s].
    #[arg(
        long,
        env = "IRONROOT_MQTT_BACKPRESSURE_TIMEOUT",
        value_name = "DURATION"
    )]
    mqtt_backpressure_timeout: Option<String>,
    /// Subscriptions one session may hold [default: 50].
    #[arg(long, env = "IRONROOT_MQTT_MAX_SUBSCRIPTIONS", value_name = "N")]
    mqtt_max_subscriptions: Option<String>,
    /// MQTT 5 topic aliases a client may set per connection; 0 disables them [default: 16].
    #[arg(long, env = "IRONROOT_MQTT_TOPIC_ALIAS_MAX", value_name = "N")]
    mqtt_topic_alias_max: Option<String>,
    /// Longest keep-alive granted, in seconds [default: 1200].
    #[arg(long, env = "IRONROOT_MQTT_MAX_KEEPALIVE_SECS", value_name = "SECS")]
    mqtt_max_keepalive_secs: Option<String>,
    /// Time allowed for the TLS handshake [default: 10s].
    #[arg(
        long,
        env = "IRONROOT_MQTT_TLS_HANDSHAKE_TIMEOUT",
        value_name = "DURATION"
    )]
    mqtt_tls_handshake_timeout: Option<String>,
    /// Time allowed between connection and a complete CONNECT [default: 10s].
    #[arg(long, env = "IRONROOT_MQTT_CONNECT_TIMEOUT", value_name = "DURATION")]
    mqtt_connect_timeout: Option<String>,
    /// Concurrent TLS handshakes per worker thread [default: 4096].
    #[arg(
        long,
        env = "IRONROOT_MQTT_MAX_CONCURRENT_HANDSHAKES",
        value_name = "N"
    )]
    mqtt_max_concurrent_handshakes: Option<String>,
    /// Open connections per worker thread [default: 25000].
    #[arg(
        long,
        env = "IRONROOT_MQTT_MAX_CONNECTIONS_PER_WORKER",
        value_name = "N"
    )]
    mqtt_max_connections_per_worker: Option<String>,
    /// Upper bound of a v5 session expiry interval [default: 7days].
    #[arg(
        long,
        env = "IRONROOT_MQTT_MAX_SESSION_EXPIRY",
        value_name = "DURATION"
    )]
    mqtt_max_session_expiry: Option<String>,
    /// How long a v3.1.1 persistent session outlives its connection [default: 1day].
    #[arg(long, env = "IRONROOT_MQTT_V3_SESSION_EXPIRY", value_name = "DURATION")]
    mqtt_v3_session_expiry: Option<String>,
    /// Retained messages kept in total [default: 100000].
    #[arg(long, env = "IRONROOT_MQTT_MAX_RETAINED_MESSAGES", value_name = "N")]
    mqtt_max_retained_messages: Option<String>,
    /// Payload bytes of all retained messages together [default: 67108864].
    #[arg(long, env = "IRONROOT_MQTT_MAX_RETAINED_BYTES", value_name = "BYTES")]
    mqtt_max_retained_bytes: Option<String>,
    /// Devices with counters kept in memory [default: 1000000].
    #[arg(long, env = "IRONROOT_MQTT_MAX_TRACKED_DEVICES", value_name = "N")]
    mqtt_max_tracked_devices: Option<String>,
    /// PUBLISH rate per connection: PER_SECOND/BURST or off [default: 100/200].
    #[arg(long, env = "IRONROOT_MQTT_PUBLISH_RATE", value_name = "RATE")]
    mqtt_publish_rate: Option<String>,
    /// New TCP connections per source IP before TLS: PER_SECOND/BURST or off [default: 100/200].
    #[arg(
        long,
        env = "IRONROOT_MQTT_CONNECTION_RATE_PER_IP",
        value_name = "RATE"
    )]
    mqtt_connection_rate_per_ip: Option<String>,
    /// Bytes of messages the broker may hold (512MiB, 2GiB, ...); over 90 % new connections get
    /// 0x97 and the heaviest publishers are slowed [default: 1/4 of RAM, at most 4GiB].
    #[arg(long, env = "IRONROOT_MQTT_MEMORY_BUDGET", value_name = "SIZE")]
    mqtt_memory_budget: Option<String>,
}

impl MqttLimitFlags {
    /// The given flags as `(file key, text)`, in [`MqttLimits::FLAG_KEYS`] order.
    fn into_pairs(self) -> Vec<(String, String)> {
        let values = [
            self.mqtt_max_packet_size,
            self.mqtt_inflight_window,
            self.mqtt_max_queued_messages,
            self.mqtt_backpressure_timeout,
            self.mqtt_max_subscriptions,
            self.mqtt_topic_alias_max,
            self.mqtt_max_keepalive_secs,
            self.mqtt_tls_handshake_timeout,
            self.mqtt_connect_timeout,
            self.mqtt_max_concurrent_handshakes,
            self.mqtt_max_connections_per_worker,
            self.mqtt_max_session_expiry,
            self.mqtt_v3_session_expiry,
            self.mqtt_max_retained_messages,
            self.mqtt_max_retained_bytes,
            self.mqtt_max_tracked_devices,
            self.mqtt_publish_rate,
            self.mqtt_connection_rate_per_ip,
            self.mqtt_memory_budget,
        ];
        // Checked by the unit test below: one flag per key, same order.
        MqttLimits::FLAG_KEYS
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
            .collect()
    }
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
    overrides.pkcs11_pin_file = args.pkcs11_pin_file;
    overrides.mqtt_limits = args.mqtt_limits.into_pairs();
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
    let secrets = NodeSecrets::resolve(
        &config,
        env_passphrase,
        std::env::var("IRONROOT_PKCS11_PIN").ok(),
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        flags: MqttLimitFlags,
    }

    #[test]
    fn one_flag_per_limit_key_named_after_it() {
        let cmd = Cli::command();
        let flags: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        let want: Vec<String> = MqttLimits::FLAG_KEYS
            .iter()
            .map(|k| format!("mqtt-{}", k.replace('_', "-")))
            .collect();
        assert_eq!(flags, want);
        // The `[default: …]` each help text states is the real default, in the flag's syntax.
        for (arg, key) in cmd.get_arguments().zip(MqttLimits::FLAG_KEYS) {
            let help = arg.get_help().unwrap().to_string();
            let stated = help
                .rsplit_once("[default: ")
                .and_then(|(_, d)| d.strip_suffix(']'))
                .unwrap_or_else(|| panic!("{key}: no [default: …] in {help:?}"));
            if *key == "memory_budget" {
                continue; // machine-dependent, stated in words
            }
            let mut parsed = MqttLimits::default();
            parsed
                .set(key, stated)
                .unwrap_or_else(|e| panic!("{key}: {stated:?}: {e}"));
            assert_eq!(parsed, MqttLimits::default(), "{key}: help says {stated:?}");
        }
        // Each flag lands on its own key.
        for (i, flag) in want.iter().enumerate() {
            let cli =
                <Cli as clap::Parser>::try_parse_from(["x", &format!("--{flag}"), "v"]).unwrap();
            assert_eq!(
                cli.flags.into_pairs(),
                vec![(MqttLimits::FLAG_KEYS[i].to_owned(), "v".to_owned())]
            );
        }
    }
}
