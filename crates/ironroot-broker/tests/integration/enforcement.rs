//! Live enforcement on connected clients: revocation, kick, quarantine, policy change and
//! takeover — each observed by a real client, with the delay measured.

use std::time::{Duration, Instant};

use ironroot_broker::{BrokerEvent, KickReason, PolicyScope};
use ironroot_pki::Serial;
use serde_json::json;

use crate::harness::*;

const NOT_AUTHORIZED: u64 = 0x87;
const ADMINISTRATIVE_ACTION: u64 = 0x98;
const SESSION_TAKEN_OVER: u64 = 0x8E;

fn serial(c: &crate::pki::ClientFiles) -> Serial {
    c.broker_serial()
}

/// Connects `id` with paho and waits until the broker has its session.
fn connected(
    b: &TestBroker,
    c: &crate::pki::ClientFiles,
    id: &str,
    protocol: u8,
    steps: serde_json::Value,
) -> Paho {
    let mut p = Paho::spawn(&paho_spec(b, c, id, protocol, steps));
    assert!(
        p.wait_ev("connack", Duration::from_secs(10)).is_some(),
        "{:?} {}",
        p.seen,
        p.stderr()
    );
    assert!(b.wait_connected(id, true, Duration::from_secs(5)));
    p
}

fn revocation_cuts_live_session(protocol: u8) {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let mut p = connected(
        &b,
        &dev,
        "dev-1",
        protocol,
        json!([["wait_disconnect", 10]]),
    );
    let t0 = Instant::now();
    b.pki.revoke(&dev); // new handshakes fail
    let closed = b.handle.revoke_serial(&serial(&dev)); // the live session is cut
    assert_eq!(closed, 1);
    let disc = p
        .wait_ev("disconnect", Duration::from_secs(5))
        .expect("client sees the disconnect");
    let delay = t0.elapsed();
    println!("revocation -> client disconnect (MQTT {protocol}): {delay:?}");
    assert!(delay < Duration::from_secs(1), "revocation took {delay:?}");
    if protocol == 5 {
        assert_eq!(disc["rc"], NOT_AUTHORIZED, "{:?}", p.seen);
    }
    assert!(b.wait_connected("dev-1", false, Duration::from_secs(1)));
    assert!(
        b.wait_event(Duration::from_secs(2), |e| matches!(
            e,
            BrokerEvent::Kicked {
                reason: KickReason::Revoked,
                ..
            }
        ))
        .is_some()
    );
    // and it cannot come back
    let again = Paho::run(&paho_spec(&b, &dev, "dev-1", protocol, json!([])));
    assert!(evs(&again, "connack").is_empty(), "{again:?}");
}

#[test]
fn revocation_cuts_live_session_mqtt5() {
    revocation_cuts_live_session(5);
}

#[test]
fn revocation_cuts_live_session_mqtt311() {
    revocation_cuts_live_session(4);
}

#[test]
fn revocation_spares_other_devices() {
    let b = TestBroker::start();
    let (d1, d2) = (b.client("dev-1"), b.client("dev-2"));
    let mut p1 = connected(&b, &d1, "dev-1", 5, json!([["wait_disconnect", 10]]));
    let _p2 = connected(&b, &d2, "dev-2", 5, json!([["wait_disconnect", 10]]));
    assert_eq!(b.handle.revoke_serial(&serial(&d1)), 1);
    assert!(p1.wait_ev("disconnect", Duration::from_secs(2)).is_some());
    std::thread::sleep(Duration::from_millis(200));
    assert!(b.handle.is_connected("dev-2"));
}

fn kick(protocol: u8) {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let mut spec = paho_spec(
        &b,
        &dev,
        "dev-1",
        protocol,
        json!([["wait_disconnect", 10]]),
    );
    spec["will"] = json!({"topic": "devices/dev-1/status", "payload": "gone"});
    let mut p = Paho::spawn(&spec);
    assert!(p.wait_ev("connack", Duration::from_secs(10)).is_some());
    let backend = b.client("backend");
    let mut watcher = connected(
        &b,
        &backend,
        "backend",
        5,
        json!([["subscribe", "devices/+/status", 0], ["sleep", 1.5]]),
    );
    assert!(watcher.wait_ev("suback", Duration::from_secs(5)).is_some());
    let t0 = Instant::now();
    assert!(b.handle.kick("dev-1", KickReason::Administrative));
    let disc = p
        .wait_ev("disconnect", Duration::from_secs(5))
        .expect("kicked");
    println!(
        "kick -> client disconnect (MQTT {protocol}): {:?}",
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    if protocol == 5 {
        assert_eq!(disc["rc"], ADMINISTRATIVE_ACTION);
    }
    assert!(!b.handle.kick("nobody", KickReason::Administrative));
    let log = watcher.finish();
    assert!(
        payloads(&log).is_empty(),
        "a kicked device's will is not published: {log:?}"
    );
}

#[test]
fn kick_closes_connection_mqtt5() {
    kick(5);
}

#[test]
fn kick_closes_connection_mqtt311() {
    kick(4);
}

#[test]
fn quarantine_applies_to_live_session() {
    let b = TestBroker::start();
    let (dev, backend) = (b.client("dev-1"), b.client("backend"));
    let mut d = connected(
        &b,
        &dev,
        "dev-1",
        5,
        json!([
            ["subscribe", "devices/dev-1/commands", 1],
            ["wait_messages", 1, 5],
            ["sleep", 1.0],
            ["publish", "devices/dev-1/telemetry", "t", 1, false],
            ["publish", "devices/dev-1/status", "s", 1, false]
        ]),
    );
    assert!(d.wait_ev("suback", Duration::from_secs(5)).is_some());
    let cmd = |payload: &str| {
        run({
            let mut c = mosquitto("mosquitto_pub", &b, &backend, "backend", true);
            c.args(["-t", "devices/dev-1/commands", "-m", payload, "-q", "1"]);
            c
        })
    };
    assert_eq!(cmd("before").code, Some(0));
    assert!(d.wait_ev("message", Duration::from_secs(5)).is_some());
    let t0 = Instant::now();
    let report = b.handle.set_quarantine("dev-1", true);
    println!("quarantine enforced in {:?}: {report:?}", t0.elapsed());
    assert_eq!(report.subscriptions_removed, 1);
    assert_eq!(
        report.connections_closed, 0,
        "the quarantine policy still allows CONNECT"
    );
    assert_eq!(cmd("after").code, Some(0));
    let log = d.finish();
    assert_eq!(
        payloads(&log),
        vec!["before"],
        "no command after quarantine: {log:?}"
    );
    let acks: Vec<u64> = evs(&log, "puback")
        .iter()
        .map(|a| a["rc"].as_u64().unwrap())
        .collect();
    assert_eq!(
        acks,
        vec![NOT_AUTHORIZED, 0],
        "telemetry denied, status allowed: {log:?}"
    );
    assert!(
        b.wait_event(Duration::from_secs(2), |e| matches!(e, BrokerEvent::SubscriptionsRevoked { device_id, .. } if device_id == "dev-1"))
            .is_some()
    );
    // Release: the device may subscribe again.
    b.handle.set_quarantine("dev-1", false);
    let log = Paho::run(&paho_spec(
        &b,
        &dev,
        "dev-1",
        5,
        json!([["subscribe", "devices/dev-1/commands", 1]]),
    ));
    assert_eq!(evs(&log, "suback")[0]["codes"], json!([1]));
}

#[test]
fn policy_change_removes_subscriptions_and_stops_deliveries() {
    let b = TestBroker::start();
    let (backend, dev) = (b.client("backend"), b.client("dev-1"));
    let mut w = connected(
        &b,
        &backend,
        "backend",
        4,
        json!([["subscribe", "devices/+/telemetry", 1], ["sleep", 2.0]]),
    );
    assert!(w.wait_ev("suback", Duration::from_secs(5)).is_some());
    let publish = |payload: &str| {
        run({
            let mut c = mosquitto("mosquitto_pub", &b, &dev, "dev-1", false);
            c.args(["-t", "devices/dev-1/telemetry", "-m", payload, "-q", "1"]);
            c
        })
        .code
    };
    assert_eq!(publish("one"), Some(0));
    assert!(w.wait_ev("message", Duration::from_secs(5)).is_some());
    // The backend loses telemetry.
    b.policies.update(|s| {
        s.devices.insert(
            "backend".into(),
            vec![backend_policy(false, &["devices/*/status"])],
        );
    });
    let t0 = Instant::now();
    let report = b.handle.policy_changed(PolicyScope::All);
    let took = t0.elapsed();
    println!("policy change enforced in {took:?}: {report:?}");
    assert!(took < Duration::from_secs(1));
    assert_eq!(report.subscriptions_removed, 1);
    assert_eq!(b.handle.stats().subscriptions, 0);
    assert_eq!(publish("two"), Some(0));
    let log = w.finish();
    assert_eq!(payloads(&log), vec!["one"], "{log:?}");
}

#[test]
fn receive_is_decided_per_delivery_under_the_current_policy() {
    let b = TestBroker::start();
    let (backend, dev) = (b.client("backend"), b.client("dev-1"));
    let mut w = connected(
        &b,
        &backend,
        "backend",
        5,
        json!([["subscribe", "devices/+/telemetry", 1], ["sleep", 2.0]]),
    );
    assert!(w.wait_ev("suback", Duration::from_secs(5)).is_some());
    // Keep iot:Subscribe on the filter but deny iot:Receive on dev-1's telemetry.
    b.policies.update(|s| {
        s.devices.insert(
            "backend".into(),
            vec![backend_policy(true, &["devices/dev-9/telemetry"])],
        );
    });
    let report = b.handle.policy_changed(PolicyScope::Devices(&["backend"]));
    assert_eq!(
        (report.sessions_evaluated, report.subscriptions_removed),
        (1, 0)
    );
    let out = run({
        let mut c = mosquitto("mosquitto_pub", &b, &dev, "dev-1", true);
        c.args(["-t", "devices/dev-1/telemetry", "-m", "secret", "-q", "1"]);
        c
    });
    assert_eq!(out.code, Some(0));
    let log = w.finish();
    assert!(payloads(&log).is_empty(), "{log:?}");
    assert!(
        b.wait_event(Duration::from_secs(2), |e| matches!(e,
            BrokerEvent::Denied { device_id, action: ironroot_broker::DeniedAction::Receive(_), .. } if device_id == "backend"))
            .is_some()
    );
}

fn takeover(protocol: u8) {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let mut first = connected(
        &b,
        &dev,
        "dev-1",
        protocol,
        json!([["wait_disconnect", 10]]),
    );
    let mut second = Paho::spawn(&paho_spec(
        &b,
        &dev,
        "dev-1",
        protocol,
        json!([["sleep", 1.0]]),
    ));
    assert_eq!(
        second.wait_ev("connack", Duration::from_secs(10)).unwrap()["rc"],
        0
    );
    let disc = first
        .wait_ev("disconnect", Duration::from_secs(5))
        .expect("first connection is cut");
    if protocol == 5 {
        assert_eq!(disc["rc"], SESSION_TAKEN_OVER);
    }
    let ev = b
        .wait_event(Duration::from_secs(2), |e| {
            matches!(e, BrokerEvent::TakenOver { .. })
        })
        .expect("takeover recorded");
    let BrokerEvent::TakenOver {
        device_id,
        previous_source,
        new_source,
        previous_serial,
        new_serial,
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(device_id, "dev-1");
    assert_ne!(
        previous_source, new_source,
        "both source addresses are recorded"
    );
    assert_eq!(
        previous_serial, new_serial,
        "the same certificate in two places: a clone shows up"
    );
    assert_eq!(b.handle.device_stats("dev-1").unwrap().takeovers, 1);
    second.finish();
}

#[test]
fn takeover_records_both_sources_mqtt5() {
    takeover(5);
}

#[test]
fn takeover_records_both_sources_mqtt311() {
    takeover(4);
}
