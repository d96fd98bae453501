//! `[mqtt.limits]` of the node configuration: the file form of [`ironroot_broker::Limits`],
//! its per-identity overrides, and the flag form of each key (`--mqtt-publish-rate 5000/10000`).
//!
//! ```toml
//! [mqtt.limits]
//! publish_rate = { per_second = 100.0, burst = 200.0 }
//!
//! [[mqtt.limits.override]]
//! group = "backend"            # every member of the registry group
//! publish_rate = { per_second = 5000.0, burst = 10000.0 }
//! max_connections = 10
//!
//! [[mqtt.limits.override]]
//! device = "gateway-7"         # one device id
//! publish_rate = "off"
//! ```

use std::time::Duration;

use ironroot_broker::{IdentitySelector, LimitOverride, RateLimit};
use serde::{Deserialize, Serialize};

/// The keys whose value is a rate.
const RATE_KEYS: [&str; 2] = ["publish_rate", "connection_rate_per_ip"];

/// A rate flag's text as the file's TOML value: `off`, or `<per_second>/<burst>`.
fn rate_flag(text: &str) -> Result<toml::Value, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(toml::Value::String(text.to_owned()));
    }
    let form = || {
        format!("unknown rate {text:?}: expected \"off\" or <per_second>/<burst> (e.g. 5000/10000)")
    };
    let (rate, burst) = text.split_once('/').ok_or_else(form)?;
    let number = |s: &str| s.trim().parse::<f64>().map_err(|_| form());
    let mut t = toml::Table::new();
    t.insert("per_second".into(), toml::Value::Float(number(rate)?));
    t.insert("burst".into(), toml::Value::Float(number(burst)?));
    Ok(toml::Value::Table(t))
}

/// `[mqtt.limits]`: the file form of [`ironroot_broker::Limits`] (same names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttLimits {
    /// Largest MQTT packet accepted, in bytes.
    pub max_packet_size: u32,
    /// Unacknowledged QoS 1/2 messages in flight per connection and direction.
    pub inflight_window: u16,
    /// Messages queued for one session (a QoS 1/2 publisher waits for room in a connected
    /// subscriber's full queue; QoS 0 and offline sessions drop).
    pub max_queued_messages: usize,
    /// How long a QoS 1/2 publisher waits for room before the message is dropped for that
    /// subscriber.
    #[serde(with = "humantime_serde")]
    pub backpressure_timeout: Duration,
    /// Subscriptions one session may hold.
    pub max_subscriptions: usize,
    /// MQTT 5 topic aliases a client may set per connection (0: none).
    pub topic_alias_max: u16,
    /// Longest keep-alive granted, in seconds.
    pub max_keepalive_secs: u16,
    /// Time allowed for the TLS handshake.
    #[serde(with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// Time allowed between connection and a complete CONNECT.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Concurrent TLS handshakes per worker thread.
    pub max_concurrent_handshakes: usize,
    /// Open connections per worker thread.
    pub max_connections_per_worker: usize,
    /// Upper bound of a v5 session expiry interval.
    #[serde(with = "humantime_serde")]
    pub max_session_expiry: Duration,
    /// How long a v3.1.1 persistent session outlives its connection.
    #[serde(with = "humantime_serde")]
    pub v3_session_expiry: Duration,
    /// Retained messages kept in total.
    pub max_retained_messages: usize,
    /// Payload bytes of all retained messages together.
    pub max_retained_bytes: usize,
    /// Devices with counters kept in memory.
    pub max_tracked_devices: usize,
    /// Per-connection PUBLISH rate (`{ per_second, burst }`, or `"off"`).
    #[serde(with = "rate")]
    pub publish_rate: Option<RateLimit>,
    /// New TCP connections per source IP before the TLS handshake (`{ per_second, burst }`,
    /// or `"off"`).
    #[serde(with = "rate")]
    pub connection_rate_per_ip: Option<RateLimit>,
    /// Bytes of messages the broker holds at most (`"512MiB"`, `"2GiB"`, or bytes); over 90 %
    /// new connections are refused (`0x97`) and the heaviest publishers slowed.
    #[serde(with = "size")]
    pub memory_budget: usize,
    /// `[[mqtt.limits.override]]`: per-device or per-group replacements of `publish_rate`
    /// and the connection count (see [`MqttLimitOverride`]).
    #[serde(rename = "override", skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MqttLimitOverride>,
}

impl Default for MqttLimits {
    fn default() -> Self {
        MqttLimits::from(&ironroot_broker::Limits::default())
    }
}

impl From<&ironroot_broker::Limits> for MqttLimits {
    fn from(l: &ironroot_broker::Limits) -> Self {
        MqttLimits {
            max_packet_size: l.max_packet_size,
            inflight_window: l.inflight_window,
            max_queued_messages: l.max_queued_messages,
            backpressure_timeout: l.backpressure_timeout,
            max_subscriptions: l.max_subscriptions,
            topic_alias_max: l.topic_alias_max,
            max_keepalive_secs: l.max_keepalive_secs,
            tls_handshake_timeout: l.tls_handshake_timeout,
            connect_timeout: l.connect_timeout,
            max_concurrent_handshakes: l.max_concurrent_handshakes,
            max_connections_per_worker: l.max_connections_per_worker,
            max_session_expiry: l.max_session_expiry,
            v3_session_expiry: l.v3_session_expiry,
            max_retained_messages: l.max_retained_messages,
            max_retained_bytes: l.max_retained_bytes,
            max_tracked_devices: l.max_tracked_devices,
            publish_rate: l.publish_rate,
            connection_rate_per_ip: l.connection_rate_per_ip,
            memory_budget: l.memory_budget,
            overrides: l.overrides.iter().map(MqttLimitOverride::from).collect(),
        }
    }
}

impl MqttLimits {
    /// The broker's limits with these values.
    pub fn to_broker(&self) -> ironroot_broker::Limits {
        let mut l = ironroot_broker::Limits::default();
        l.max_packet_size = self.max_packet_size;
        l.inflight_window = self.inflight_window;
        l.max_queued_messages = self.max_queued_messages;
        l.backpressure_timeout = self.backpressure_timeout;
        l.max_subscriptions = self.max_subscriptions;
        l.topic_alias_max = self.topic_alias_max;
        l.max_keepalive_secs = self.max_keepalive_secs;
        l.tls_handshake_timeout = self.tls_handshake_timeout;
        l.connect_timeout = self.connect_timeout;
        l.max_concurrent_handshakes = self.max_concurrent_handshakes;
        l.max_connections_per_worker = self.max_connections_per_worker;
        l.max_session_expiry = self.max_session_expiry;
        l.v3_session_expiry = self.v3_session_expiry;
        l.max_retained_messages = self.max_retained_messages;
        l.max_retained_bytes = self.max_retained_bytes;
        l.max_tracked_devices = self.max_tracked_devices;
        l.publish_rate = self.publish_rate;
        l.connection_rate_per_ip = self.connection_rate_per_ip;
        l.memory_budget = self.memory_budget;
        l.overrides = self.overrides.iter().map(|o| o.to_broker()).collect();
        l
    }

    /// Sets the key `key` from a flag's text, with the file's parse rules and messages: a
    /// rate is `off` or `<per_second>/<burst>` (`5000/10000`), a duration human text (`10s`),
    /// a count an integer. `key` is a [`MqttLimits::FLAG_KEYS`] entry.
    pub fn set(&mut self, key: &str, text: &str) -> Result<(), String> {
        if !Self::FLAG_KEYS.contains(&key) {
            return Err(format!("unknown key {key:?}"));
        }
        let value = if key == "memory_budget" {
            toml::Value::String(text.to_owned())
        } else if RATE_KEYS.contains(&key) {
            rate_flag(text)?
        } else if let Ok(n) = text.trim().parse::<i64>() {
            toml::Value::Integer(n)
        } else {
            // A duration, or a wrong value the deserializer names ("expected u32").
            toml::Value::String(text.to_owned())
        };
        let mut table = toml::Table::try_from(&*self).map_err(|e| e.to_string())?;
        table.insert(key.to_owned(), value);
        *self = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| e.inner().to_string())?;
        Ok(())
    }

    /// The keys settable by flag (`--mqtt-<key with dashes>`): every key but the overrides.
    pub const FLAG_KEYS: &'static [&'static str] = &[
        "max_packet_size",
        "inflight_window",
        "max_queued_messages",
        "backpressure_timeout",
        "max_subscriptions",
        "topic_alias_max",
        "max_keepalive_secs",
        "tls_handshake_timeout",
        "connect_timeout",
        "max_concurrent_handshakes",
        "max_connections_per_worker",
        "max_session_expiry",
        "v3_session_expiry",
        "max_retained_messages",
        "max_retained_bytes",
        "max_tracked_devices",
        "publish_rate",
        "connection_rate_per_ip",
        "memory_budget",
    ];
}

/// `[[mqtt.limits.override]]`: limits for one device (`device = "id"`) or the members of one
/// registry group (`group = "name"`), looked up when the device connects; a field left out
/// keeps the default. The device's own override comes first, then group overrides in file
/// order; each field is taken from the first override that sets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawOverride", into = "RawOverride")]
pub struct MqttLimitOverride {
    /// Whom it applies to.
    pub selector: IdentitySelector,
    /// PUBLISH rate of each connection (`Some(None)`: off; `None`: the default).
    pub publish_rate: Option<Option<RateLimit>>,
    /// Live connections the identity may hold at once (at least 1; `None`: 1).
    pub max_connections: Option<u32>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rate_opt")]
    publish_rate: Option<Option<RateLimit>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_connections: Option<u32>,
}

impl TryFrom<RawOverride> for MqttLimitOverride {
    type Error = String;
    fn try_from(r: RawOverride) -> Result<Self, String> {
        let selector = match (r.group, r.device) {
            (Some(g), None) if !g.is_empty() => IdentitySelector::Group(g),
            (None, Some(d)) if !d.is_empty() => IdentitySelector::Device(d),
            (Some(_), Some(_)) => {
                return Err("an override names either `group` or `device`, not both".into());
            }
            _ => return Err("an override needs `group = \"name\"` or `device = \"id\"`".into()),
        };
        if r.max_connections == Some(0) {
            return Err("max_connections must be >= 1 (to keep a device out, revoke it or deny iot:Connect)".into());
        }
        Ok(MqttLimitOverride {
            selector,
            publish_rate: r.publish_rate,
            max_connections: r.max_connections,
        })
    }
}

impl From<MqttLimitOverride> for RawOverride {
    fn from(o: MqttLimitOverride) -> Self {
        let (group, device) = match o.selector {
            IdentitySelector::Group(g) => (Some(g), None),
            IdentitySelector::Device(d) => (None, Some(d)),
            _ => (None, None),
        };
        RawOverride {
            group,
            device,
            publish_rate: o.publish_rate,
            max_connections: o.max_connections,
        }
    }
}

impl From<&LimitOverride> for MqttLimitOverride {
    fn from(o: &LimitOverride) -> Self {
        MqttLimitOverride {
            selector: o.selector.clone(),
            publish_rate: o.publish_rate,
            max_connections: o.max_connections,
        }
    }
}

impl MqttLimitOverride {
    /// The broker's form.
    pub fn to_broker(&self) -> LimitOverride {
        let mut o = LimitOverride::new(self.selector.clone());
        o.publish_rate = self.publish_rate;
        o.max_connections = self.max_connections;
        o
    }
}

/// A byte size as `"512MiB"` (B, KiB, MiB, GiB, TiB) or a plain integer of bytes; printed in
/// the largest unit that divides it.
mod size {
    use serde::{Deserialize, Deserializer, Serializer};

    const UNITS: [(&str, u32); 5] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)];

    pub(crate) fn serialize<S: Serializer>(v: &usize, s: S) -> Result<S::Ok, S::Error> {
        let (unit, shift) = UNITS
            .iter()
            .find(|(_, shift)| *v != 0 && v.trailing_zeros() >= *shift)
            .copied()
            .unwrap_or(("B", 0));
        s.serialize_str(&format!("{}{unit}", v >> shift))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Bytes(u64),
        Text(String),
    }

    /// `"512MiB"` → bytes.
    pub(crate) fn parse(text: &str) -> Result<usize, String> {
        let t = text.trim();
        let (number, shift) = UNITS
            .iter()
            .find_map(|(unit, shift)| t.strip_suffix(unit).map(|n| (n.trim(), *shift)))
            .unwrap_or((t, 0));
        let n: usize = number.parse().map_err(|_| {
            format!("invalid size {text:?}: expected bytes or a number with B, KiB, MiB, GiB, TiB (e.g. \"512MiB\")")
        })?;
        let bytes = n
            .checked_mul(1usize << shift)
            .ok_or_else(|| format!("size {text:?} is too large"))?;
        if bytes == 0 {
            return Err("memory_budget must be > 0".into());
        }
        Ok(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        use serde::de::Error as _;
        match Form::deserialize(d).map_err(|_| {
            D::Error::custom("expected a size such as \"512MiB\" or a number of bytes")
        })? {
            Form::Bytes(n) => parse(&n.to_string()).map_err(D::Error::custom),
            Form::Text(s) => parse(&s).map_err(D::Error::custom),
        }
    }
}

/// `Option<Option<RateLimit>>` for an optional field: absent, `"off"` or a table.
mod rate_opt {
    use ironroot_broker::RateLimit;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        v: &Option<Option<RateLimit>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(r) => super::rate::serialize(r, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<RateLimit>>, D::Error> {
        super::rate::deserialize(d).map(Some)
    }
}

/// `Option<RateLimit>` as `{ per_second, burst }` or `"off"`.
mod rate {
    use ironroot_broker::RateLimit;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Table {
        per_second: f64,
        burst: f64,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Off(String),
        Rate(Table),
    }

    pub(crate) fn serialize<S: Serializer>(v: &Option<RateLimit>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_str("off"),
            Some(r) => Table {
                per_second: r.per_second,
                burst: r.burst,
            }
            .serialize(s),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<RateLimit>, D::Error> {
        use serde::de::Error as _;
        match Form::deserialize(d).map_err(|_| {
            D::Error::custom("expected `\"off\"` or `{ per_second = <number>, burst = <number> }`")
        })? {
            Form::Off(s) if s == "off" => Ok(None),
            Form::Off(s) => Err(D::Error::custom(format!(
                "unknown rate {s:?}: expected \"off\" or {{ per_second, burst }}"
            ))),
            Form::Rate(t) if t.per_second > 0.0 && t.burst >= 1.0 => {
                Ok(Some(RateLimit::new(t.per_second, t.burst)))
            }
            Form::Rate(_) => Err(D::Error::custom(
                "per_second must be > 0 and burst >= 1 (use \"off\" to disable the limit)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeConfig;
    use std::path::Path;

    const FILE: &str = r#"
[mqtt.limits]
publish_rate = { per_second = 100.0, burst = 200.0 }

[[mqtt.limits.override]]
group = "backend"
publish_rate = { per_second = 5000.0, burst = 10000.0 }
max_connections = 10

[[mqtt.limits.override]]
device = "gateway-7"
publish_rate = "off"
"#;

    #[test]
    fn overrides_parse_print_back_and_reach_the_broker() {
        let c = NodeConfig::from_toml_str(FILE, Path::new("n.toml")).unwrap();
        let o = &c.mqtt.limits.overrides;
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].selector, IdentitySelector::Group("backend".into()));
        assert_eq!(o[0].max_connections, Some(10));
        assert_eq!(o[1].publish_rate, Some(None));
        assert_eq!(o[1].max_connections, None);
        let back = NodeConfig::from_toml_str(&c.to_toml().unwrap(), Path::new("x")).unwrap();
        assert_eq!(back, c);
        let broker = c.mqtt.limits.to_broker();
        let backend = broker.for_identity("svc-1", &["backend".into()]);
        assert_eq!(backend.publish_rate, Some(RateLimit::new(5000.0, 10000.0)));
        assert_eq!(backend.max_connections, 10);
        assert_eq!(broker.for_identity("gateway-7", &[]).publish_rate, None);
        assert_eq!(
            broker.for_identity("dev-1", &[]).publish_rate,
            Some(RateLimit::new(100.0, 200.0))
        );
    }

    #[test]
    fn bad_overrides_are_refused_naming_the_key() {
        for (body, needle) in [
            ("group = \"a\"\ndevice = \"b\"\n", "not both"),
            ("max_connections = 2\n", "needs `group"),
            (
                "group = \"a\"\nmax_connections = 0\n",
                "max_connections must be >= 1",
            ),
            (
                "group = \"a\"\npublish_rate = { per_second = 0.0, burst = 1.0 }\n",
                "per_second must be > 0",
            ),
            ("group = \"a\"\nmax_conections = 2\n", "max_conections"),
        ] {
            let text = format!("[[mqtt.limits.override]]\n{body}");
            let e = NodeConfig::from_toml_str(&text, Path::new("n.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("n.toml"), "{body}: {e}");
            assert!(e.contains("mqtt.limits.override"), "{body}: {e}");
        }
        let ok = "[[mqtt.limits.override]]\ngroup = \"a\"\nmax_connections = 1\n";
        assert!(NodeConfig::from_toml_str(ok, Path::new("n.toml")).is_ok());
    }

    #[test]
    fn flags_use_the_file_rules() {
        let mut l = MqttLimits::default();
        l.set("publish_rate", "5000/10000").unwrap();
        assert_eq!(l.publish_rate, Some(RateLimit::new(5000.0, 10000.0)));
        l.set("connection_rate_per_ip", "off").unwrap();
        assert_eq!(l.connection_rate_per_ip, None);
        l.set("backpressure_timeout", "3s").unwrap();
        assert_eq!(l.backpressure_timeout, Duration::from_secs(3));
        l.set("max_inflight_window", "3").unwrap_err();
        l.set("inflight_window", "7").unwrap();
        l.set("memory_budget", "512MiB").unwrap();
        assert_eq!(l.memory_budget, 512 << 20);
        let e = l.set("memory_budget", "lots").unwrap_err();
        assert!(e.contains("invalid size"), "{e}");
        let shown = toml::Table::try_from(&l).unwrap();
        assert_eq!(shown["memory_budget"].as_str(), Some("512MiB"));
        assert_eq!(l.inflight_window, 7);
        let e = l.set("publish_rate", "0/1").unwrap_err();
        assert!(e.contains("per_second must be > 0"), "{e}");
        let e = l.set("publish_rate", "fast").unwrap_err();
        assert!(
            e.contains("expected \"off\" or <per_second>/<burst>"),
            "{e}"
        );
        let e = l.set("max_packet_size", "big").unwrap_err();
        assert!(e.contains("expected u32"), "{e}");
        let e = l.set("connect_timeout", "ten").unwrap_err();
        assert!(!e.is_empty());
        assert_eq!(l.inflight_window, 7, "a refused flag changes nothing");
        for key in MqttLimits::FLAG_KEYS {
            let current = toml::Table::try_from(MqttLimits::default()).unwrap();
            assert!(current.contains_key(*key), "{key} is a file key");
        }
    }
}
