//! Every refusal of issue 7 with the right reason code, for MQTT 3.1.1 and 5, observed by real
//! clients, and audited (an event for each).

use std::time::Duration;

use ironroot_broker::{BrokerEvent, ClientIdError, DeniedAction, DisconnectCause, RefusalReason};
use serde_json::{Value, json};

use crate::harness::*;

const NOT_AUTHORIZED: u64 = 0x87;
const CLIENT_ID_NOT_VALID: u64 = 0x85;
const V3_SUBACK_FAILURE: u64 = 0x80;

fn connack(log: &[Value]) -> &Value {
    evs(log, "connack")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no CONNACK in {log:?}"))
}

/// paho reports MQTT 3.1.1 CONNACK return codes translated to MQTT 5 reason codes
/// (5 → 0x87, 2 → 0x85), so both protocols are checked against the same numbers.
fn connack_rc(log: &[Value]) -> u64 {
    connack(log)["rc"].as_u64().unwrap()
}

fn denied_event(b: &TestBroker, device: &str, pred: impl Fn(&DeniedAction) -> bool) -> bool {
    b.wait_event(Duration::from_secs(5), |e| {
        matches!(e, BrokerEvent::Denied { device_id, action, .. } if device_id == device && pred(action))
    })
    .is_some()
}

fn publish_foreign(protocol: u8) {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let log = Paho::run(&paho_spec(
        &b,
        &dev,
        "dev-1",
        protocol,
        json!([
            ["publish", "devices/dev-2/telemetry", "spoofed", 1, false],
            ["sleep", 0.3]
        ]),
    ));
    assert_eq!(connack_rc(&log), 0);
    if protocol == 5 {
        let acks = evs(&log, "puback");
        assert_eq!(acks.len(), 1, "{log:?}");
        assert_eq!(acks[0]["rc"], NOT_AUTHORIZED, "{log:?}");
        assert!(
            evs(&log, "disconnect").is_empty(),
            "v5 stays connected: {log:?}"
        );
    } else {
        // 3.1.1 has no negative PUBACK: the broker closes the connection [MQTT-3.3.5-2].
        assert!(evs(&log, "puback").is_empty(), "{log:?}");
        assert_eq!(evs(&log, "disconnect").len(), 1, "{log:?}");
        assert!(
            b.wait_event(Duration::from_secs(5), |e| matches!(
                e,
                BrokerEvent::Disconnected {
                    cause: DisconnectCause::PublishDenied,
                    ..
                }
            ))
            .is_some()
        );
    }
    assert!(denied_event(&b, "dev-1", |a| *a
        == DeniedAction::Publish("devices/dev-2/telemetry".into())));
    assert_eq!(b.handle.device_stats("dev-1").unwrap().authz_failures, 1);
    assert_eq!(b.handle.device_stats("dev-1").unwrap().messages_in, 0);
}

#[test]
fn publish_to_another_devices_topic_mqtt5() {
    publish_foreign(5);
}

#[test]
fn publish_to_another_devices_topic_mqtt311() {
    publish_foreign(4);
}

#[test]
fn publish_to_another_devices_topic_mosquitto_pub_is_cut_off() {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let out = run({
        let mut c = mosquitto("mosquitto_pub", &b, &dev, "dev-1", false);
        c.args(["-t", "devices/dev-2/telemetry", "-m", "x", "-q", "1"]);
        c
    });
    assert_ne!(out.code, Some(0), "mosquitto_pub must fail: {}", out.stderr);
    assert!(denied_event(&b, "dev-1", |a| matches!(
        a,
        DeniedAction::Publish(_)
    )));
}

fn subscribe_refused(protocol: u8, filter: &str) {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let log = Paho::run(&paho_spec(
        &b,
        &dev,
        "dev-1",
        protocol,
        json!([
            ["subscribe", filter, 1],
            ["subscribe", "devices/dev-1/commands", 1]
        ]),
    ));
    let subacks = evs(&log, "suback");
    assert_eq!(subacks.len(), 2, "{log:?}");
    let want = if protocol == 5 {
        NOT_AUTHORIZED
    } else {
        V3_SUBACK_FAILURE
    };
    assert_eq!(subacks[0]["codes"], json!([want]), "{filter}: {log:?}");
    assert_eq!(
        subacks[1]["codes"],
        json!([1]),
        "own commands topic is granted: {log:?}"
    );
    assert!(denied_event(&b, "dev-1", |a| *a
        == DeniedAction::Subscribe(filter.into())));
}

#[test]
fn subscribe_refusals_mqtt5() {
    for f in [
        "devices/dev-2/commands",
        "#",
        "+/+/telemetry",
        "$SYS/#",
        "devices/+/commands",
    ] {
        subscribe_refused(5, f);
    }
}

#[test]
fn subscribe_refusals_mqtt311() {
    for f in [
        "devices/dev-2/commands",
        "#",
        "+/+/telemetry",
        "$SYS/#",
        "devices/+/commands",
    ] {
        subscribe_refused(4, f);
    }
}

#[test]
fn subscribe_hash_refused_mosquitto_sub() {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let out = run({
        let mut c = mosquitto("mosquitto_sub", &b, &dev, "dev-1", true);
        c.args(["-t", "#", "-d", "-W", "2"]);
        c
    });
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("Subscribed (mid: 1): 135"),
        "SUBACK 0x87: {text}"
    );
}

fn will_to_other_device(protocol: u8) {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let mut spec = paho_spec(&b, &dev, "dev-1", protocol, json!([]));
    spec["will"] = json!({"topic": "devices/dev-2/status", "payload": "dev-2 is dead", "qos": 1});
    let log = Paho::run(&spec);
    assert_eq!(connack_rc(&log), NOT_AUTHORIZED, "{log:?}");
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(e,
            BrokerEvent::ConnectRefused { reason: RefusalReason::WillNotAuthorized { topic, .. }, .. } if topic == "devices/dev-2/status"))
            .is_some()
    );
    assert!(!b.handle.is_connected("dev-1"));
}

#[test]
fn will_aimed_at_another_device_mqtt5() {
    will_to_other_device(5);
}

#[test]
fn will_aimed_at_another_device_mqtt311() {
    will_to_other_device(4);
}

/// The certificate is a valid `dev-1` device certificate (ironroot's CA issues no other
/// names); the client id is what varies.
fn bad_client_id(protocol: u8, client_id: &str, want: ClientIdError) {
    let cert_cn = "dev-1";
    let b = TestBroker::start();
    let c = b.client(cert_cn);
    let log = Paho::run(&paho_spec(&b, &c, client_id, protocol, json!([])));
    assert_eq!(
        connack_rc(&log),
        CLIENT_ID_NOT_VALID,
        "cn {cert_cn:?} id {client_id:?}: {log:?}"
    );
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(e,
            BrokerEvent::ConnectRefused { reason: RefusalReason::ClientId(r), .. } if *r == want))
            .is_some(),
        "{:?}",
        b.events()
    );
    assert_eq!(b.handle.device_stats(cert_cn).unwrap().auth_failures, 1);
}

#[test]
fn mismatched_client_id_refused_mqtt5() {
    bad_client_id(5, "dev-2", ClientIdError::CertificateMismatch);
}

#[test]
fn mismatched_client_id_refused_mqtt311() {
    bad_client_id(4, "dev-2", ClientIdError::CertificateMismatch);
}

#[test]
fn wildcard_client_ids_refused() {
    for (proto, id) in [
        (5, "+"),
        (4, "#"),
        (5, "dev-1/x"),
        (4, "$dev-1"),
        (5, "dev-1+"),
    ] {
        bad_client_id(proto, id, ClientIdError::ReservedCharacter);
    }
}

#[test]
fn control_characters_in_client_id_refused() {
    bad_client_id(5, "dev\u{7}1", ClientIdError::ControlCharacter);
}

fn rejected_with(b: &TestBroker, needle: &str) {
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(e, BrokerEvent::CertificateRejected { error, .. } if error.contains(needle)))
            .is_some(),
        "{:?}",
        b.events()
    );
}

fn tls_refused(b: &TestBroker, c: &crate::pki::ClientFiles, id: &str) {
    let log = Paho::run(&paho_spec(b, c, id, 5, json!([])));
    assert!(
        evs(&log, "connack").is_empty(),
        "no MQTT session without a valid certificate: {log:?}"
    );
    assert_eq!(evs(&log, "connect_error").len(), 1, "{log:?}");
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::TlsHandshakeFailed { .. }
        ))
        .is_some()
    );
    assert!(!b.handle.is_connected(id));
}

#[test]
fn certificate_from_another_ca_refused_in_tls() {
    let b = TestBroker::start();
    let foreign = crate::pki::TestPki::new("foreign");
    let c = foreign.client("dev-1");
    tls_refused(&b, &c, "dev-1");
    // Same CA names as ours (both are "ironroot Intermediate CA G1"), different keys: webpki
    // finds the namesake issuer and the signature fails.
    rejected_with(&b, "BadSignature");
    assert_eq!(
        b.handle.device_stats("dev-1").unwrap().auth_failures,
        1,
        "attributed to the claimed CN"
    );
}

#[test]
fn expired_certificate_refused_in_tls() {
    let b = TestBroker::start();
    let c = b.pki.expired_client("dev-1");
    tls_refused(&b, &c, "dev-1");
    rejected_with(&b, "certificate expired");
}

#[test]
fn revoked_certificate_refused_in_tls() {
    let b = TestBroker::start();
    let c = b.client("dev-1");
    b.pki.revoke(&c);
    tls_refused(&b, &c, "dev-1");
    rejected_with(&b, "Revoked");
}

#[test]
fn revoked_serial_refused_at_connect_even_if_tls_accepted_it() {
    // The broker's own revoked set covers a handshake that completed before the verifier's set
    // changed (and a TLS configuration that resumes sessions without re-verifying).
    let b = TestBroker::start();
    let c = b.client("dev-1");
    b.handle.revoke_serial(&c.broker_serial());
    let log = Paho::run(&paho_spec(&b, &c, "dev-1", 5, json!([])));
    assert_eq!(connack_rc(&log), NOT_AUTHORIZED, "{log:?}");
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::ConnectRefused {
                reason: RefusalReason::Revoked,
                ..
            }
        ))
        .is_some()
    );
}

fn quarantined(protocol: u8) {
    let b = TestBroker::start();
    b.handle.set_quarantine("dev-1", true);
    let dev = b.client("dev-1");
    let log = Paho::run(&paho_spec(
        &b,
        &dev,
        "dev-1",
        protocol,
        json!([
            ["subscribe", "devices/dev-1/commands", 1],
            ["publish", "devices/dev-1/status", "quarantined", 1, false],
            ["publish", "devices/dev-1/telemetry", "x", 1, false],
            ["sleep", 0.3]
        ]),
    ));
    assert_eq!(
        connack_rc(&log),
        0,
        "the quarantine policy lets the device report its status: {log:?}"
    );
    let want = if protocol == 5 {
        NOT_AUTHORIZED
    } else {
        V3_SUBACK_FAILURE
    };
    assert_eq!(evs(&log, "suback")[0]["codes"], json!([want]), "{log:?}");
    let acks = evs(&log, "puback");
    if protocol == 5 {
        assert_eq!(acks.len(), 2, "{log:?}");
        assert_eq!(acks[0]["rc"], 0, "status allowed: {log:?}");
        assert_eq!(acks[1]["rc"], NOT_AUTHORIZED, "telemetry denied: {log:?}");
    } else {
        assert_eq!(acks.len(), 1, "status allowed, then cut off: {log:?}");
        assert_eq!(evs(&log, "disconnect").len(), 1, "{log:?}");
    }
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::Connected {
                quarantined: true,
                ..
            }
        ))
        .is_some()
    );
    assert!(denied_event(&b, "dev-1", |a| matches!(
        a,
        DeniedAction::Subscribe(_)
    )));
    assert!(denied_event(&b, "dev-1", |a| matches!(
        a,
        DeniedAction::Publish(_)
    )));
}

#[test]
fn quarantined_device_gets_the_quarantine_policy_mqtt5() {
    quarantined(5);
}

#[test]
fn quarantined_device_gets_the_quarantine_policy_mqtt311() {
    quarantined(4);
}

#[test]
fn connect_denied_by_policy() {
    // No policy attached at all: default deny.
    let b = TestBroker::start_full(
        ironroot_broker::Limits::default(),
        ironroot_broker::PolicySnapshot::default(),
    );
    let dev = b.client("dev-1");
    for proto in [4, 5] {
        let log = Paho::run(&paho_spec(&b, &dev, "dev-1", proto, json!([])));
        assert_eq!(connack_rc(&log), NOT_AUTHORIZED, "{log:?}");
    }
    assert_eq!(b.handle.device_stats("dev-1").unwrap().authz_failures, 2);
    assert!(b.events().iter().any(|e| matches!(e,
        BrokerEvent::ConnectRefused { reason: RefusalReason::NotAuthorized(r), .. } if r.contains("iot:Connect"))));
}

#[test]
fn operator_certificate_is_not_a_device() {
    // A valid chain, but an operator credential: the broker accepts device identities only.
    let b = TestBroker::start();
    let op = b.pki.operator("admin");
    let log = Paho::run(&paho_spec(&b, &op, "admin", 5, json!([])));
    assert_eq!(connack_rc(&log), NOT_AUTHORIZED, "{log:?}");
    assert!(
        b.wait_event(Duration::from_secs(5), |e| matches!(
            e,
            BrokerEvent::ConnectRefused {
                reason: RefusalReason::NoIdentity(_),
                ..
            }
        ))
        .is_some(),
        "{:?}",
        b.events()
    );
}

#[test]
fn retained_publish_needs_retain_publish() {
    for protocol in [4u8, 5] {
        let b = TestBroker::start();
        let dev = b.client("dev-1");
        let log = Paho::run(&paho_spec(
            &b,
            &dev,
            "dev-1",
            protocol,
            json!([
                ["publish", "devices/dev-1/status", "ok", 1, true],
                [
                    "publish",
                    "devices/dev-1/telemetry",
                    "not retainable",
                    1,
                    true
                ],
                ["sleep", 0.3]
            ]),
        ));
        let acks = evs(&log, "puback");
        if protocol == 5 {
            let codes: Vec<_> = acks.iter().map(|a| a["rc"].as_u64().unwrap()).collect();
            assert_eq!(codes, vec![0, NOT_AUTHORIZED], "{log:?}");
        } else {
            assert_eq!(acks.len(), 1, "{log:?}");
            assert_eq!(evs(&log, "disconnect").len(), 1, "{log:?}");
        }
        assert!(denied_event(&b, "dev-1", |a| *a
            == DeniedAction::RetainPublish(
                "devices/dev-1/telemetry".into()
            )));
        assert_eq!(
            b.handle.stats().retained_messages,
            1,
            "only the allowed one is stored"
        );
    }
}
