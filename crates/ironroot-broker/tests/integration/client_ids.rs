//! `iot:Connect` decides the client id: the default policy pins it to the device id, a policy
//! may widen it (`client/${iot:Connection.Thing.ThingName}-*`). Everything keyed by the device
//! identity (connection quota, revocation, quarantine, kick, events) covers all its client ids,
//! and a session never changes identity.

use std::time::Duration;

use ironroot_broker::{
    BrokerEvent, ClientIdError, IdentitySelector, KickReason, LimitOverride, Limits,
    PolicySnapshot, RefusalReason,
};
use ironroot_policy::Attachment;
use serde_json::{Value, json};

use crate::harness::*;
use crate::pki::ClientFiles;

const CLIENT_ID_NOT_VALID: u64 = 0x85;
const NOT_AUTHORIZED: u64 = 0x87;
const QUOTA_EXCEEDED: u64 = 0x97;

/// Devices `dev-1` and `dev-2` may connect as `<own id>-*`; `dev-2` also as `dev-1-*`.
fn widened() -> PolicySnapshot {
    let mut snap = standard_snapshot();
    snap.devices.insert(
        "dev-1".into(),
        vec![policy(
            "fleet-client-ids",
            Attachment::Device,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect",
            "Resource":"client/${iot:Connection.Thing.ThingName}-*"}]}"#,
        )],
    );
    snap.devices.insert(
        "dev-2".into(),
        vec![policy(
            "greedy",
            Attachment::Device,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect",
            "Resource":["client/dev-2-*","client/dev-1-*"]}]}"#,
        )],
    );
    snap
}

fn limits(max_connections: u32) -> Limits {
    let mut l = Limits::default();
    let mut o = LimitOverride::new(IdentitySelector::Device("dev-1".into()));
    o.max_connections = Some(max_connections);
    l.overrides.push(o);
    l
}

/// Connects with certificate `c` as `id` and stays until the broker closes the connection.
fn stay(b: &TestBroker, c: &ClientFiles, id: &str, extra: Value) -> Paho {
    let mut s = paho_spec(b, c, id, 5, json!([["wait_disconnect", 30]]));
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    let mut p = Paho::spawn(&s);
    let ack = p
        .wait_ev("connack", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{id}: {:?} {}", p.seen, p.stderr()));
    assert_eq!(ack["rc"], 0, "{id}: {ack}");
    p
}

fn connack(b: &TestBroker, c: &ClientFiles, id: &str) -> u64 {
    let log = Paho::run(&paho_spec(b, c, id, 5, json!([["disconnect"]])));
    evs(&log, "connack")[0]["rc"].as_u64().unwrap()
}

#[test]
fn default_policy_pins_the_client_id_to_the_device_id() {
    let b = TestBroker::start();
    let c = b.client("dev-1");
    assert_eq!(connack(&b, &c, "dev-1-b"), CLIENT_ID_NOT_VALID);
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::ConnectRefused {
                reason: RefusalReason::ClientId(ClientIdError::CertificateMismatch),
                ..
            }
        ))
        .is_some()
    );
    assert_eq!(connack(&b, &c, "dev-1"), 0);
}

#[test]
fn widened_policy_accepts_several_client_ids_and_revocation_cuts_them_all() {
    let b = TestBroker::start_full(limits(2), widened());
    let c = b.client("dev-1");
    let mut a = stay(&b, &c, "dev-1-a", json!({}));
    let mut bb = stay(&b, &c, "dev-1-b", json!({}));
    assert!(b.wait_connected("dev-1-a", true, Duration::from_secs(5)));
    assert!(b.wait_connected("dev-1-b", true, Duration::from_secs(5)));
    assert!(b.handle.is_connected("dev-1"), "the device is connected");
    // The connection quota is the identity's, whatever the client id.
    assert_eq!(connack(&b, &c, "dev-1-c"), QUOTA_EXCEEDED);
    // Audit: connections are recorded under the device, not the client id.
    let mut connected: Vec<(String, String)> = b
        .events()
        .iter()
        .filter_map(|e| match e {
            BrokerEvent::Connected {
                device_id,
                client_id,
                ..
            } => Some((device_id.clone(), client_id.clone())),
            _ => None,
        })
        .collect();
    connected.sort();
    let want = |c: &str| ("dev-1".to_string(), c.to_string());
    assert_eq!(connected, vec![want("dev-1-a"), want("dev-1-b")]);
    // Revoking the certificate cuts every connection made with it.
    b.pki.revoke(&c);
    assert_eq!(b.handle.revoke_serial(&c.broker_serial()), 2);
    for p in [&mut a, &mut bb] {
        let disc = p.wait_ev("disconnect", Duration::from_secs(5)).unwrap();
        assert_eq!(disc["rc"], NOT_AUTHORIZED, "{:?}", p.seen);
    }
    assert!(b.wait_connected("dev-1", false, Duration::from_secs(5)));
}

#[test]
fn quarantine_and_kick_reach_every_client_id_of_the_device() {
    let b = TestBroker::start_full(limits(3), widened());
    let c = b.client("dev-1");
    let mut own = stay(&b, &c, "dev-1", json!({}));
    let mut extra = stay(&b, &c, "dev-1-a", json!({}));
    assert!(b.wait_connected("dev-1-a", true, Duration::from_secs(5)));
    // The quarantine policy pins the client id again: the widened connection is cut, the
    // device's own one stays (and is quarantined).
    let report = b.handle.set_quarantine("dev-1", true);
    assert_eq!(report.sessions_evaluated, 2, "{report:?}");
    assert_eq!(report.connections_closed, 1, "{report:?}");
    let disc = extra.wait_ev("disconnect", Duration::from_secs(5)).unwrap();
    assert_eq!(disc["rc"], NOT_AUTHORIZED);
    assert!(b.wait_connected("dev-1-a", false, Duration::from_secs(5)));
    assert!(b.handle.is_connected("dev-1"));
    assert_eq!(
        connack(&b, &c, "dev-1-b"),
        CLIENT_ID_NOT_VALID,
        "quarantined: own id only"
    );
    b.handle.set_quarantine("dev-1", false);
    let mut again = stay(&b, &c, "dev-1-b", json!({}));
    assert!(b.wait_connected("dev-1-b", true, Duration::from_secs(5)));
    // An operator kick of the device closes all of its connections.
    assert!(b.handle.kick("dev-1", KickReason::Administrative));
    for p in [&mut own, &mut again] {
        assert!(
            p.wait_ev("disconnect", Duration::from_secs(5)).is_some(),
            "{:?}",
            p.seen
        );
    }
    assert!(b.wait_connected("dev-1", false, Duration::from_secs(5)));
}

#[test]
fn another_device_never_takes_over_a_session_even_if_its_policy_allows_the_id() {
    let b = TestBroker::start_full(limits(2), widened());
    let d1 = b.client("dev-1");
    let d2 = b.client("dev-2");
    let mut held = stay(
        &b,
        &d1,
        "dev-1-a",
        json!({"clean": false, "session_expiry": 60}),
    );
    assert!(b.wait_connected("dev-1-a", true, Duration::from_secs(5)));
    assert_eq!(connack(&b, &d2, "dev-1-a"), NOT_AUTHORIZED, "live session");
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::ConnectRefused {
                reason: RefusalReason::ClientId(ClientIdError::OwnedByAnotherDevice),
                ..
            }
        ))
        .is_some()
    );
    assert!(
        held.wait_ev("disconnect", Duration::from_millis(500))
            .is_none(),
        "the owner stays connected: {:?}",
        held.seen
    );
    // Its persistent session outlives the connection and still belongs to dev-1.
    drop(held);
    assert!(b.wait_connected("dev-1-a", false, Duration::from_secs(5)));
    assert_eq!(
        connack(&b, &d2, "dev-1-a"),
        NOT_AUTHORIZED,
        "persistent session"
    );
    // dev-2's policy does allow the id: its own widened ids work, and so would dev-1-a once
    // no session of dev-1 holds it.
    assert_eq!(connack(&b, &d2, "dev-2-x"), 0);
    assert_eq!(
        connack(&b, &d1, "dev-1-a"),
        0,
        "the owner takes it back (clean start)"
    );
    assert_eq!(
        connack(&b, &d2, "dev-1-a"),
        0,
        "session gone: the id is free"
    );
}
