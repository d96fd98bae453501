//! Server settings, with defaults that are safe to expose.
//!
//! [`Limits`] and [`EnrollmentRules`] are (de)serializable so a node's configuration file
//! (ironroot-node, `ironroot up --config`) holds them as they are: unknown keys are refused,
//! missing keys keep their default, durations are written in human form (`"10s"`, `"24h"`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How [`crate::Server::start`] runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory: `pki/` (the CA), `ironroot.db` (SQLite registry), `audit/`,
    /// `admin.token`, `server/` (TLS key and certificate), `server.url`.
    pub data_dir: PathBuf,
    /// Registry URL (`postgres://…`); `None`: SQLite in the data directory.
    pub database_url: Option<String>,
    /// HTTPS address (default 127.0.0.1:8443; port 0 picks a free port).
    pub api_addr: SocketAddr,
    /// Names the server certificate is issued for (default `localhost`, `127.0.0.1`).
    pub hostnames: Vec<String>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// Rotation and re-enrollment rules.
    pub enrollment: EnrollmentRules,
    /// Passphrase of the online CA keys; `None`: read `<data-dir>/pki/online-passphrase`.
    pub ca_passphrase: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// User PIN of the PKCS#11 token holding the online CA keys (`ironroot ca init
    /// --pkcs11-module`); `None` when they are encrypted files. Zeroized, never printed.
    pub pkcs11_pin: Option<ironroot_pki::Pin>,
}

impl ServerConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            api_addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            hostnames: vec!["localhost".into(), "127.0.0.1".into()],
            limits: Limits::default(),
            enrollment: EnrollmentRules::default(),
            ca_passphrase: None,
            pkcs11_pin: None,
        }
    }
}

/// Resource limits: what keeps one client (or many) from holding the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open connections at most; further connections wait in the kernel backlog.
    pub max_connections: usize,
    /// Time for the TLS handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Time for the request head and for the whole body to arrive.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A connection is closed after this long, whatever it does.
    #[serde(with = "humantime_serde")]
    pub connection_lifetime: Duration,
    /// Largest request body (EST CSRs are < 2 KiB; imports are the large case).
    pub max_body: usize,
    /// Largest operator import body.
    pub max_import_body: usize,
    /// Requests per second allowed per source address (token bucket refill rate).
    pub per_source_rate: f64,
    /// Burst per source address.
    pub per_source_burst: f64,
    /// Enrollment attempts per minute allowed per device id.
    pub per_device_per_minute: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(120),
            max_body: 64 * 1024,
            max_import_body: 32 * 1024 * 1024,
            per_source_rate: 50.0,
            per_source_burst: 100.0,
            per_device_per_minute: 10.0,
        }
    }
}

impl Limits {
    /// Limits for a load test from one address: no per-source throttling.
    pub fn danger_unthrottled() -> Self {
        Self {
            per_source_rate: 1e9,
            per_source_burst: 1e9,
            ..Self::default()
        }
    }
}

/// Rotation and re-enrollment rules.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollmentRules {
    /// After a re-enrollment the previous certificate stays valid this long, or until the
    /// device first uses the new one; then it is retired (revoked, reason superseded).
    #[serde(with = "humantime_serde")]
    pub rotation_grace: Duration,
    /// An operational certificate that expired less than this long ago may be replaced by
    /// re-enrolling with the factory credential (device offline past expiry).
    #[serde(with = "humantime_serde")]
    pub expired_reenroll_window: Duration,
    /// Lifetime of claim tokens when the operator gives none.
    #[serde(with = "humantime_serde")]
    pub default_claim_ttl: Duration,
    /// Longest claim-token lifetime accepted.
    #[serde(with = "humantime_serde")]
    pub max_claim_ttl: Duration,
    /// How often due rotations are retired.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Lifetime of operational device certificates (at least 1 minute). Devices renew at two
    /// thirds of it.
    #[serde(with = "humantime_serde")]
    pub device_validity: Duration,
}

impl Default for EnrollmentRules {
    fn default() -> Self {
        Self {
            rotation_grace: Duration::from_secs(24 * 3600),
            expired_reenroll_window: Duration::from_secs(30 * 24 * 3600),
            default_claim_ttl: Duration::from_secs(15 * 60),
            max_claim_ttl: Duration::from_secs(7 * 24 * 3600),
            sweep_interval: Duration::from_secs(5),
            device_validity: Duration::from_secs(90 * 24 * 3600),
        }
    }
}
