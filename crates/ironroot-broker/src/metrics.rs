//! Broker-wide metrics in the Prometheus text exposition format (version 0.0.4): what an
//! operator graphs and alerts on. Counters are atomics bumped on the hot path; gauges (queue
//! depths) are read when scraped. No device id appears in a label: a fleet of a million devices
//! must not become a million time series.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ntex_mqtt::QoS;

use crate::config::{IdentitySelector, LimitOverride, RateLimit};
use crate::counters::inc;
use crate::events::RefusalReason;

/// Upper bounds (seconds) of the TLS handshake latency histogram buckets.
const HANDSHAKE_BUCKETS: [f64; 11] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Why a CONNECT was refused, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NoIdentity,
    ClientId,
    NotAuthorized,
    Revoked,
    Will,
    AuthMethod,
    ConnectionQuota,
    MemoryBudget,
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Refusal::NoIdentity,
        Refusal::ClientId,
        Refusal::NotAuthorized,
        Refusal::Revoked,
        Refusal::Will,
        Refusal::AuthMethod,
        Refusal::ConnectionQuota,
        Refusal::MemoryBudget,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::NoIdentity => "no_identity",
            Refusal::ClientId => "client_id",
            Refusal::NotAuthorized => "not_authorized",
            Refusal::Revoked => "revoked",
            Refusal::Will => "will",
            Refusal::AuthMethod => "auth_method",
            Refusal::ConnectionQuota => "connection_quota",
            Refusal::MemoryBudget => "memory_budget",
        }
    }

    pub(crate) fn of(reason: &RefusalReason) -> Refusal {
        match reason {
            RefusalReason::NoIdentity(_) => Refusal::NoIdentity,
            RefusalReason::ClientId(_) => Refusal::ClientId,
            RefusalReason::Revoked => Refusal::Revoked,
            RefusalReason::WillTopicInvalid | RefusalReason::WillNotAuthorized { .. } => {
                Refusal::Will
            }
            RefusalReason::AuthMethodUnsupported => Refusal::AuthMethod,
            RefusalReason::ConnectionQuota { .. } => Refusal::ConnectionQuota,
            RefusalReason::MemoryBudget => Refusal::MemoryBudget,
            _ => Refusal::NotAuthorized,
        }
    }
}

/// Why a message was not delivered to a subscriber, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drop {
    /// The subscriber's queue was full (QoS 0, or a disconnected session).
    QueueFull,
    /// QoS 0 for a disconnected session.
    Offline,
    /// A held QoS 1/2 publisher's wait passed `backpressure_timeout`.
    BackpressureTimeout,
    /// The message expired before it could be sent, or did not fit the client's maximum size.
    ExpiredOrTooLarge,
}

impl Drop {
    const ALL: [Drop; 4] = [
        Drop::QueueFull,
        Drop::Offline,
        Drop::BackpressureTimeout,
        Drop::ExpiredOrTooLarge,
    ];

    fn label(self) -> &'static str {
        match self {
            Drop::QueueFull => "queue_full",
            Drop::Offline => "offline_qos0",
            Drop::BackpressureTimeout => "backpressure_timeout",
            Drop::ExpiredOrTooLarge => "expired_or_too_large",
        }
    }
}

/// Why a connection's reading was paused, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// Over its PUBLISH rate.
    PublishRate,
    /// One of the heaviest publishers while the memory budget is over its high watermark.
    MemoryBudget,
}

impl Throttle {
    const ALL: [Throttle; 2] = [Throttle::PublishRate, Throttle::MemoryBudget];

    fn label(self) -> &'static str {
        match self {
            Throttle::PublishRate => "publish_rate",
            Throttle::MemoryBudget => "memory_budget",
        }
    }
}

/// The broker's metric counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    connects: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    messages_in: [AtomicU64; 3],
    messages_out: [AtomicU64; 3],
    drops: [AtomicU64; 4],
    publish_throttled: [AtomicU64; Throttle::ALL.len()],
    handshakes: [AtomicU64; HANDSHAKE_BUCKETS.len() + 1],
    handshake_micros: AtomicU64,
}

fn qos_index(q: QoS) -> usize {
    match q {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

impl Metrics {
    pub(crate) fn connected(&self) {
        inc(&self.connects);
    }

    pub(crate) fn refused(&self, r: Refusal) {
        inc(&self.refusals[r as usize]);
    }

    pub(crate) fn message_in(&self, q: QoS) {
        inc(&self.messages_in[qos_index(q)]);
    }

    pub(crate) fn message_out(&self, q: QoS) {
        inc(&self.messages_out[qos_index(q)]);
    }

    pub(crate) fn dropped(&self, d: Drop) {
        inc(&self.drops[d as usize]);
    }

    pub(crate) fn throttled_for(&self, t: Throttle) {
        inc(&self.publish_throttled[t as usize]);
    }

    /// Records one completed TLS handshake.
    pub(crate) fn handshake(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = HANDSHAKE_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(HANDSHAKE_BUCKETS.len());
        inc(&self.handshakes[bucket]);
        self.handshake_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Values read at scrape time, next to the counters.
pub(crate) struct Gauges {
    pub(crate) connected: usize,
    pub(crate) sessions: usize,
    pub(crate) subscriptions: usize,
    pub(crate) queued_messages: usize,
    pub(crate) retained_messages: usize,
    pub(crate) retained_bytes: usize,
    pub(crate) connections_rate_limited: u64,
    pub(crate) tls_handshake_failures: u64,
    pub(crate) backpressure_waits: u64,
    pub(crate) events_dropped: u64,
    pub(crate) publish_rate: Option<RateLimit>,
    pub(crate) connection_rate_per_ip: Option<RateLimit>,
    pub(crate) max_queued_messages: usize,
    pub(crate) memory_budget: usize,
    pub(crate) memory_used: usize,
    pub(crate) memory_overloaded: bool,
    /// Per-identity overrides, labelled (see [`override_label`]).
    pub(crate) overrides: Vec<(String, Option<Option<RateLimit>>, Option<u32>)>,
}

/// The metric label of an override: `group:<name>` for a group, `device#<position in the
/// override list>` for a device (no device id in a label).
pub(crate) fn override_label(o: &LimitOverride, index: usize) -> String {
    match &o.selector {
        IdentitySelector::Group(g) => format!("group:{g}"),
        _ => format!("device#{index}"),
    }
}

/// Escapes a label value (backslash, double quote, line feed) for the exposition format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn value(out: &mut String, name: &str, labels: &str, v: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {v}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

impl Metrics {
    /// Appends every metric in the text exposition format.
    pub(crate) fn render(&self, g: &Gauges, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gauges: [(&str, &str, f64); 6] = [
            (
                "ironroot_mqtt_connections",
                "Connections with a completed CONNECT.",
                g.connected as f64,
            ),
            (
                "ironroot_mqtt_sessions",
                "Sessions kept (connected, or persistent and waiting).",
                g.sessions as f64,
            ),
            (
                "ironroot_mqtt_subscriptions",
                "Subscriptions in the routing trie.",
                g.subscriptions as f64,
            ),
            (
                "ironroot_mqtt_queued_messages",
                "Deliveries queued for subscribers, all sessions together.",
                g.queued_messages as f64,
            ),
            (
                "ironroot_mqtt_retained_messages",
                "Retained messages stored.",
                g.retained_messages as f64,
            ),
            (
                "ironroot_mqtt_retained_bytes",
                "Payload bytes of the retained messages.",
                g.retained_bytes as f64,
            ),
        ];
        for (name, help, v) in gauges {
            family(out, name, "gauge", help);
            value(out, name, "", v);
        }
        for (name, help, v) in [
            (
                "ironroot_mqtt_memory_budget_bytes",
                "Bytes of messages the broker may hold (memory_budget).",
                g.memory_budget,
            ),
            (
                "ironroot_mqtt_memory_used_bytes",
                "Bytes of messages held now (queued, inflight, retained), each message once.",
                g.memory_used,
            ),
            (
                "ironroot_mqtt_memory_overloaded",
                "1 while over the high watermark (new CONNECTs refused), until under the low one.",
                usize::from(g.memory_overloaded),
            ),
        ] {
            family(out, name, "gauge", help);
            value(out, name, "", v);
        }
        let name = "ironroot_mqtt_queue_limit_messages";
        family(
            out,
            name,
            "gauge",
            "Messages one session may have queued (max_queued_messages).",
        );
        value(out, name, "", g.max_queued_messages);
        for (name, help, pick) in [
            (
                "ironroot_mqtt_rate_limit_per_second",
                "Configured rate limits, sustained (absent: off).",
                (|r: &RateLimit| r.per_second) as fn(&RateLimit) -> f64,
            ),
            (
                "ironroot_mqtt_rate_limit_burst",
                "Configured rate limits, burst (absent: off).",
                |r: &RateLimit| r.burst,
            ),
        ] {
            family(out, name, "gauge", help);
            if let Some(r) = &g.publish_rate {
                value(out, name, "limit=\"publish_per_connection\"", pick(r));
            }
            if let Some(r) = &g.connection_rate_per_ip {
                value(out, name, "limit=\"connections_per_source_ip\"", pick(r));
            }
        }
        let name = "ironroot_mqtt_identity_max_connections";
        family(
            out,
            name,
            "gauge",
            "Live connections one identity may hold: the default and each override that sets it.",
        );
        value(
            out,
            name,
            "override=\"default\"",
            crate::config::DEFAULT_MAX_CONNECTIONS_PER_IDENTITY,
        );
        for (label, _, max) in &g.overrides {
            if let Some(max) = max {
                value(out, name, &format!("override=\"{}\"", escape(label)), max);
            }
        }
        for (name, help, pick) in [
            (
                "ironroot_mqtt_override_publish_rate_per_second",
                "Per-connection PUBLISH rate of an override's identities, sustained (-1: off).",
                (|r: &RateLimit| r.per_second) as fn(&RateLimit) -> f64,
            ),
            (
                "ironroot_mqtt_override_publish_rate_burst",
                "Per-connection PUBLISH rate of an override's identities, burst (-1: off).",
                |r: &RateLimit| r.burst,
            ),
        ] {
            family(out, name, "gauge", help);
            for (label, rate, _) in &g.overrides {
                if let Some(rate) = rate {
                    let v = rate.as_ref().map_or(-1.0, pick);
                    value(out, name, &format!("override=\"{}\"", escape(label)), v);
                }
            }
        }

        let name = "ironroot_mqtt_connects_total";
        family(out, name, "counter", "CONNECTs accepted.");
        value(out, name, "", load(&self.connects));
        let name = "ironroot_mqtt_refusals_total";
        family(out, name, "counter", "Connections refused, by reason.");
        for r in Refusal::ALL {
            let labels = format!("reason=\"{}\"", r.label());
            value(out, name, &labels, load(&self.refusals[r as usize]));
        }
        value(
            out,
            name,
            "reason=\"connection_rate\"",
            g.connections_rate_limited,
        );
        value(
            out,
            name,
            "reason=\"tls_handshake\"",
            g.tls_handshake_failures,
        );

        for (name, help, arr) in [
            (
                "ironroot_mqtt_messages_in_total",
                "PUBLISH packets accepted from clients, by QoS.",
                &self.messages_in,
            ),
            (
                "ironroot_mqtt_messages_out_total",
                "Deliveries sent to subscribers (QoS 1/2: acknowledged), by QoS.",
                &self.messages_out,
            ),
        ] {
            family(out, name, "counter", help);
            for (i, a) in arr.iter().enumerate() {
                value(out, name, &format!("qos=\"{i}\""), load(a));
            }
        }
        let name = "ironroot_mqtt_dropped_total";
        family(out, name, "counter", "Deliveries not made, by reason.");
        for d in Drop::ALL {
            let labels = format!("reason=\"{}\"", d.label());
            value(out, name, &labels, load(&self.drops[d as usize]));
        }
        let name = "ironroot_mqtt_backpressure_waits_total";
        family(
            out,
            name,
            "counter",
            "QoS 1/2 deliveries that held their publisher until a full subscriber queue had room.",
        );
        value(out, name, "", g.backpressure_waits);
        let name = "ironroot_mqtt_publish_throttled_total";
        family(
            out,
            name,
            "counter",
            "Episodes of a connection whose reading was paused, by reason.",
        );
        for t in Throttle::ALL {
            let labels = format!("reason=\"{}\"", t.label());
            value(
                out,
                name,
                &labels,
                load(&self.publish_throttled[t as usize]),
            );
        }
        let name = "ironroot_mqtt_events_dropped_total";
        family(
            out,
            name,
            "counter",
            "Broker events the audit sink could not take.",
        );
        value(out, name, "", g.events_dropped);

        let name = "ironroot_mqtt_tls_handshake_seconds";
        family(
            out,
            name,
            "histogram",
            "Completed mutual-TLS handshakes, by duration.",
        );
        let mut cumulative = 0;
        for (i, bound) in HANDSHAKE_BUCKETS.iter().enumerate() {
            cumulative += load(&self.handshakes[i]);
            value(
                out,
                &format!("{name}_bucket"),
                &format!("le=\"{bound}\""),
                cumulative,
            );
        }
        cumulative += load(&self.handshakes[HANDSHAKE_BUCKETS.len()]);
        value(out, &format!("{name}_bucket"), "le=\"+Inf\"", cumulative);
        value(
            out,
            &format!("{name}_sum"),
            "",
            load(&self.handshake_micros) as f64 / 1e6,
        );
        value(out, &format!("{name}_count"), "", cumulative);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            connected: 2,
            sessions: 3,
            subscriptions: 4,
            queued_messages: 5,
            retained_messages: 0,
            retained_bytes: 0,
            connections_rate_limited: 7,
            tls_handshake_failures: 1,
            backpressure_waits: 9,
            events_dropped: 0,
            publish_rate: Some(RateLimit::new(100.0, 200.0)),
            connection_rate_per_ip: None,
            max_queued_messages: 1000,
            memory_budget: 1 << 20,
            memory_used: 12,
            memory_overloaded: true,
            overrides: vec![
                (
                    "group:back\"end".into(),
                    Some(Some(RateLimit::new(5000.0, 10000.0))),
                    Some(10),
                ),
                ("device#1".into(), Some(None), None),
            ],
        }
    }

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.connected();
        m.refused(Refusal::Revoked);
        m.throttled_for(Throttle::MemoryBudget);
        m.refused(Refusal::of(&RefusalReason::ConnectionQuota {
            max_connections: 1,
        }));
        m.message_in(QoS::AtLeastOnce);
        m.dropped(Drop::BackpressureTimeout);
        m.handshake(Duration::from_micros(1_500));
        m.handshake(Duration::from_secs(5));
        let mut out = String::new();
        m.render(&gauges(), &mut out);
        for line in [
            "ironroot_mqtt_connections 2",
            "ironroot_mqtt_connects_total 1",
            "ironroot_mqtt_refusals_total{reason=\"revoked\"} 1",
            "ironroot_mqtt_refusals_total{reason=\"connection_rate\"} 7",
            "ironroot_mqtt_messages_in_total{qos=\"1\"} 1",
            "ironroot_mqtt_dropped_total{reason=\"backpressure_timeout\"} 1",
            "ironroot_mqtt_rate_limit_per_second{limit=\"publish_per_connection\"} 100",
            "ironroot_mqtt_rate_limit_burst{limit=\"publish_per_connection\"} 200",
            "ironroot_mqtt_refusals_total{reason=\"connection_quota\"} 1",
            "ironroot_mqtt_publish_throttled_total{reason=\"publish_rate\"} 0",
            "ironroot_mqtt_publish_throttled_total{reason=\"memory_budget\"} 1",
            "ironroot_mqtt_refusals_total{reason=\"memory_budget\"} 0",
            "ironroot_mqtt_memory_budget_bytes 1048576",
            "ironroot_mqtt_memory_used_bytes 12",
            "ironroot_mqtt_memory_overloaded 1",
            "ironroot_mqtt_identity_max_connections{override=\"default\"} 1",
            "ironroot_mqtt_identity_max_connections{override=\"group:back\\\"end\"} 10",
            "ironroot_mqtt_override_publish_rate_per_second{override=\"group:back\\\"end\"} 5000",
            "ironroot_mqtt_override_publish_rate_burst{override=\"group:back\\\"end\"} 10000",
            "ironroot_mqtt_override_publish_rate_per_second{override=\"device#1\"} -1",
            "ironroot_mqtt_tls_handshake_seconds_bucket{le=\"0.001\"} 0",
            "ironroot_mqtt_tls_handshake_seconds_bucket{le=\"0.002\"} 1",
            "ironroot_mqtt_tls_handshake_seconds_bucket{le=\"2.5\"} 1",
            "ironroot_mqtt_tls_handshake_seconds_bucket{le=\"+Inf\"} 2",
            "ironroot_mqtt_tls_handshake_seconds_count 2",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert!(
            !out.contains("connections_per_source_ip"),
            "an off limit is absent"
        );
        assert!(
            !out.contains("override=\"device#1\"} 1"),
            "an override without max_connections adds no max_connections gauge"
        );
    }
}
