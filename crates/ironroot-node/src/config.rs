//! [`NodeConfig`]: everything a node runs with, as one TOML file (`ironroot up --config`).
//!
//! Precedence, lowest first: built-in defaults, the file, environment variables, flags
//! ([`Overrides`] carries the last two; the CLI fills it from clap, which reads both). Every
//! table refuses unknown keys, a missing key keeps its default, durations are human text
//! (`"10s"`, `"24h"`). Secrets never live in the file: the CA passphrase is a *file path*
//! (`ca_passphrase_file`) or `IRONROOT_CA_PASSPHRASE`, and [`NodeConfig::to_toml`] redacts a
//! password inside `database_url`.
//!
//! ```toml
//! data_dir = "/var/lib/ironroot"
//! database_url = "postgres://ironroot@db/ironroot"
//! ca_passphrase_file = "/run/secrets/ca-passphrase"
//!
//! [api]
//! addr = "0.0.0.0:8443"
//! hostnames = ["ironroot.example.com"]
//! [api.limits]
//! handshake_timeout = "5s"
//! [api.enrollment]
//! rotation_grace = "12h"
//!
//! [mqtt]
//! addr = "0.0.0.0:8883"
//! [mqtt.limits]
//! publish_rate = { per_second = 10.0, burst = 20.0 }
//! connection_rate_per_ip = "off"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ironroot_server::{EnrollmentRules, Limits as ApiLimits};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
pub use crate::mqtt_limits::{MqttLimitOverride, MqttLimits};

/// The configuration of one node (server + MQTT broker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Data directory: CA (`pki/`), SQLite registry, audit log, admin token.
    pub data_dir: PathBuf,
    /// PostgreSQL registry and audit log (`postgres://…`); absent: SQLite in the data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// File holding the online CA keys' passphrase (else `IRONROOT_CA_PASSPHRASE`, else
    /// `<data_dir>/pki/online-passphrase`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_passphrase_file: Option<PathBuf>,
    /// File holding the user PIN of the PKCS#11 token with the online CA keys (else
    /// `IRONROOT_PKCS11_PIN`); only for a CA made with `ironroot ca init --pkcs11-module`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// The HTTPS API (provisioning, EST, operator).
    pub api: ApiSection,
    /// The mutual-TLS MQTT broker.
    pub mqtt: MqttSection,
}

/// `[api]`: the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// Listen address (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Names the server certificate (HTTPS and MQTT) is issued for.
    pub hostnames: Vec<String>,
    /// `[api.limits]`: connections, timeouts, body sizes, rates.
    pub limits: ApiLimits,
    /// `[api.enrollment]`: rotation and re-enrollment rules.
    pub enrollment: EnrollmentRules,
}

/// `[mqtt]`: the broker listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSection {
    /// Listen address of the mutual-TLS listener (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Broker worker threads.
    pub workers: usize,
    /// `[mqtt.limits]`: the broker's limits.
    pub limits: MqttLimits,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("./ironroot-data"),
            database_url: None,
            ca_passphrase_file: None,
            pkcs11_pin_file: None,
            api: ApiSection::default(),
            mqtt: MqttSection::default(),
        }
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        let server = ironroot_server::ServerConfig::new(".");
        ApiSection {
            addr: server.api_addr,
            hostnames: server.hostnames,
            limits: server.limits,
            enrollment: server.enrollment,
        }
    }
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            addr: SocketAddr::from(([127, 0, 0, 1], 8883)),
            workers: 2,
            limits: MqttLimits::default(),
        }
    }
}

/// Values from flags and environment variables, applied over the file (`None`: not given).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Overrides {
    /// `--data-dir` / `IRONROOT_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `IRONROOT_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--api-addr` / `IRONROOT_API_ADDR`.
    pub api_addr: Option<SocketAddr>,
    /// `--mqtt-addr` / `IRONROOT_MQTT_ADDR`.
    pub mqtt_addr: Option<SocketAddr>,
    /// `--hostname` (repeatable); empty: not given.
    pub hostnames: Vec<String>,
    /// `--ca-passphrase-file` / `IRONROOT_CA_PASSPHRASE_FILE`.
    pub ca_passphrase_file: Option<PathBuf>,
    /// `--pkcs11-pin-file` / `IRONROOT_PKCS11_PIN_FILE`.
    pub pkcs11_pin_file: Option<PathBuf>,
    /// `--mqtt-<key>` / `IRONROOT_MQTT_<KEY>`: `[mqtt.limits]` keys ([`MqttLimits::FLAG_KEYS`])
    /// with the flag's text, applied in order.
    pub mqtt_limits: Vec<(String, String)>,
}

impl NodeConfig {
    /// Parses a configuration file's text; `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            key: String::new(),
            message: e.to_string(),
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            key: e.path().to_string(),
            message: e.inner().to_string(),
        })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// The file at `path` (defaults when `None`) with `overrides` applied.
    pub fn resolve(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(p) => Self::load(p)?,
            None => Self::default(),
        };
        config.apply(overrides)?;
        Ok(config)
    }

    /// Applies flag and environment values over this configuration; a limit flag with a bad
    /// value is refused as the file's key would be.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        for (key, text) in &o.mqtt_limits {
            self.mqtt
                .limits
                .set(key, text)
                .map_err(|message| ConfigError::Flag {
                    flag: format!("--mqtt-{}", key.replace('_', "-")),
                    message,
                })?;
        }
        if let Some(v) = &o.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &o.database_url {
            self.database_url = Some(v.clone());
        }
        if let Some(v) = o.api_addr {
            self.api.addr = v;
        }
        if let Some(v) = o.mqtt_addr {
            self.mqtt.addr = v;
        }
        if !o.hostnames.is_empty() {
            self.api.hostnames = o.hostnames.clone();
        }
        if let Some(v) = &o.ca_passphrase_file {
            self.ca_passphrase_file = Some(v.clone());
        }
        if let Some(v) = &o.pkcs11_pin_file {
            self.pkcs11_pin_file = Some(v.clone());
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets redacted (a password in `database_url`
    /// becomes `<redacted>`; the CA passphrase is only ever a file path).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let mut shown = self.clone();
        shown.database_url = shown.database_url.as_deref().map(redact_url_password);
        toml::to_string(&shown).map_err(|e| ConfigError::Print(e.to_string()))
    }

    /// The server part of this configuration (without secrets: the node adds those).
    pub fn server_config(&self) -> ironroot_server::ServerConfig {
        let mut c = ironroot_server::ServerConfig::new(&self.data_dir);
        c.database_url = self.database_url.clone();
        c.api_addr = self.api.addr;
        c.hostnames = self.api.hostnames.clone();
        c.limits = self.api.limits.clone();
        c.enrollment = self.api.enrollment.clone();
        c
    }
}

/// `scheme://user:password@host/db` → `scheme://user:<redacted>@host/db`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:<redacted>@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironroot_broker::RateLimit;
    use std::time::Duration;

    #[test]
    fn defaults_print_and_parse_back_equal() {
        let c = NodeConfig::default();
        let text = c.to_toml().unwrap();
        assert_eq!(NodeConfig::from_toml_str(&text, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let c = NodeConfig::from_toml_str(
            "[api.limits]\nhandshake_timeout = \"3s\"\n[mqtt.limits]\npublish_rate = { per_second = 2.0, burst = 4.0 }\nconnection_rate_per_ip = \"off\"\n",
            Path::new("node.toml"),
        )
        .unwrap();
        assert_eq!(c.api.limits.handshake_timeout, Duration::from_secs(3));
        assert_eq!(c.api.limits.max_body, ApiLimits::default().max_body);
        assert_eq!(c.mqtt.limits.publish_rate, Some(RateLimit::new(2.0, 4.0)));
        assert_eq!(c.mqtt.limits.connection_rate_per_ip, None);
        let back = NodeConfig::from_toml_str(&c.to_toml().unwrap(), Path::new("x")).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_key_and_file() {
        let e = NodeConfig::from_toml_str("[mqtt.limits]\npublish_rat = 3\n", Path::new("n.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("publish_rat") && e.contains("n.toml"), "{e}");
        let e = NodeConfig::from_toml_str(
            "[api.limits]\nhandshake_timeout = \"ten seconds\"\n",
            Path::new("n.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("api.limits.handshake_timeout") && e.contains("n.toml"),
            "{e}"
        );
        let e = NodeConfig::from_toml_str(
            "[mqtt.limits]\npublish_rate = { per_second = 0.0, burst = 1.0 }\n",
            Path::new("n.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mqtt.limits.publish_rate"), "{e}");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut c = NodeConfig::from_toml_str(
            "data_dir = \"/a\"\n[api]\naddr = \"127.0.0.1:1\"\n",
            Path::new("x"),
        )
        .unwrap();
        c.apply(&Overrides {
            api_addr: Some("127.0.0.1:2".parse().unwrap()),
            mqtt_limits: vec![("publish_rate".into(), "off".into())],
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.api.addr.port(), 2);
        assert_eq!(c.mqtt.limits.publish_rate, None);
        let e = c
            .apply(&Overrides {
                mqtt_limits: vec![("max_packet_size".into(), "-1".into())],
                ..Overrides::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--mqtt-max-packet-size: "), "{e}");
        assert_eq!(c.data_dir, PathBuf::from("/a"));
    }

    #[test]
    fn database_password_is_redacted_in_print() {
        let c = NodeConfig {
            database_url: Some("postgres://u:hunter2@db:5432/x".into()),
            ..NodeConfig::default()
        };
        let text = c.to_toml().unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("postgres://u:<redacted>@db:5432/x"), "{text}");
        assert_eq!(
            redact_url_password("postgres://u@db/x"),
            "postgres://u@db/x"
        );
    }
}
