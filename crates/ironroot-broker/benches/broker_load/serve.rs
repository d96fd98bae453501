//! `broker_load serve DIR WORKERS [defaults]`: the ironroot broker under test, in its own process (so
//! broker and load generator each stay under the 20,000 open-file cap and RSS is the broker's
//! alone), with ironroot-pki's verifier and ironroot-policy's policies — production parts.
//! With `defaults` the broker runs with the shipped `Limits::default()` (the fleet-shaped
//! benchmark); without, on the Mosquitto anchor's footing (no rate limits, deep queues).
//! Reads control commands on stdin, one per line, and answers on stdout:
//!
//!   revoke SERIAL_HEX     -> "ok CLOSED MICROS"   (verifier's revoked set + live sessions)
//!   deny-backend          -> "ok REMOVED MICROS"  (backend loses telemetry; policy_changed)
//!   allow-backend         -> "ok 0 MICROS"
//!   rss                   -> "ok KIB"
//!   exit                  -> shuts the broker down and exits (a profiler writes its report)

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ironroot_broker::tls::TlsParts;
use ironroot_broker::{
    BrokerBuilder, BrokerConfig, IronrootPolicies, Limits, PolicyScope, PolicySnapshot,
};
use ironroot_pki::{
    CaCertificate, RevocationCheckingVerifier, RevocationSet, Serial, TrustedIssuer,
};
use ironroot_policy::{AttachedPolicy, Attachment, PolicyDocument, PolicyName};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn backend(telemetry: bool) -> AttachedPolicy {
    let (filters, topics) = if telemetry {
        (
            r#""topicfilter/devices/+/telemetry","topicfilter/devices/+/status""#,
            r#""topic/devices/*/telemetry","topic/devices/*/status""#,
        )
    } else {
        (
            r#""topicfilter/devices/+/status""#,
            r#""topic/devices/*/status""#,
        )
    };
    let json = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Effect":"Allow","Action":"iot:Subscribe","Resource":[{filters},"topicfilter/$share/ingest/devices/+/telemetry"]}},
          {{"Effect":"Allow","Action":"iot:Receive","Resource":[{topics}]}},
          {{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/*/commands"}}]}}"#
    );
    AttachedPolicy {
        name: PolicyName::new("backend").unwrap(),
        version: 1,
        document: Arc::new(PolicyDocument::parse(&json).unwrap()),
        attachment: Attachment::Device,
    }
}

/// The built-in default device policy for everyone, plus the backend's policy.
fn snapshot(telemetry: bool) -> PolicySnapshot {
    let mut snap = PolicySnapshot::with_default_device_policy();
    for id in [
        "backend",
        "backend-0",
        "backend-1",
        "backend-2",
        "backend-3",
        "backend-9",
    ] {
        snap.devices.insert(id.into(), vec![backend(telemetry)]);
    }
    snap
}

pub fn serve(dir: &Path, workers: usize, shipped_defaults: bool) {
    use rustls::pki_types::pem::PemObject;
    let root = CaCertificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let intermediate =
        CaCertificate::from_pem(&std::fs::read(dir.join("intermediate.pem")).unwrap()).unwrap();
    let revoked = Arc::new(RevocationSet::new());
    let verifier = RevocationCheckingVerifier::new(
        &[root],
        vec![TrustedIssuer {
            certificate: intermediate,
            trusted_until: None,
        }],
        revoked.clone(),
    )
    .unwrap();
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let policies = Arc::new(IronrootPolicies::new(snapshot(true)));

    let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap());
    config.workers = workers;
    let mut limits = Limits::default();
    if !shipped_defaults {
        // Same footing as the Mosquitto anchor: no rate limits, deep queues, 16 in flight.
        limits.connection_rate_per_ip = None;
        limits.publish_rate = None;
        limits.max_queued_messages = 100_000;
        limits.inflight_window = 16;
        limits.max_concurrent_handshakes = 16_384;
    }
    eprintln!(
        "serve: publish_rate {:?}, queue {}",
        limits.publish_rate, limits.max_queued_messages
    );
    config.limits = limits;
    let broker = BrokerBuilder::new(config)
        .tls_parts(TlsParts {
            chain,
            key,
            verifier,
        })
        .policy(policies.clone())
        .start()
        .expect("broker starts");
    let out = std::io::stdout();
    writeln!(
        out.lock(),
        "ready {} {}",
        broker.local_addr().unwrap().port(),
        std::process::id()
    )
    .unwrap();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let mut it = line.split_whitespace();
        let reply = match (it.next(), it.next()) {
            (Some("revoke"), Some(hex)) => {
                let t = Instant::now();
                let serial = Serial::from_hex(hex).unwrap();
                revoked.revoke(serial.clone());
                let n = broker.revoke_serial(&serial);
                format!("ok {n} {}", t.elapsed().as_micros())
            }
            (Some(cmd @ ("deny-backend" | "allow-backend")), _) => {
                let t = Instant::now();
                policies.replace(snapshot(cmd == "allow-backend"));
                let r = broker.policy_changed(PolicyScope::Devices(&["backend"]));
                format!("ok {} {}", r.subscriptions_removed, t.elapsed().as_micros())
            }
            (Some("rss"), _) => format!("ok {}", crate::rss_kib(std::process::id())),
            (Some("exit"), _) => break,
            _ => "error unknown command".to_string(),
        };
        let mut o = out.lock();
        writeln!(o, "{reply}").unwrap();
        o.flush().unwrap();
    }
    broker.shutdown();
}
