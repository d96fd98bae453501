//! Conformance scenarios for MQTT 3.1.1 and 5 with paho-mqtt: session present, QoS 0/1/2,
//! retained messages, will, keep-alive timeout, unsubscribe, persistent sessions with offline
//! queue, session expiry. Each runs once per protocol (4 = 3.1.1, 5 = 5.0).

use std::time::{Duration, Instant};

use ironroot_broker::{BrokerEvent, DisconnectCause};
use serde_json::{Value, json};

use crate::harness::*;

const PROTOCOLS: [u8; 2] = [4, 5];

fn spec_with(b: &TestBroker, id: &str, protocol: u8, extra: Value, steps: Value) -> Value {
    let c = b.client(id);
    let mut s = paho_spec(b, &c, id, protocol, steps);
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// Starts the backend subscribed to `filter` and waits for the SUBACK.
fn watcher(b: &TestBroker, protocol: u8, filter: &str, qos: u8, secs: f64) -> Paho {
    let mut w = Paho::spawn(&spec_with(
        b,
        "backend",
        protocol,
        json!({}),
        json!([["subscribe", filter, qos], ["sleep", secs]]),
    ));
    assert!(
        w.wait_ev("suback", Duration::from_secs(10)).is_some(),
        "{:?} {}",
        w.seen,
        w.stderr()
    );
    w
}

#[test]
fn session_present_flag() {
    for p in PROTOCOLS {
        let b = TestBroker::start();
        let persistent = if p == 5 {
            json!({"clean": false, "session_expiry": 60})
        } else {
            json!({"clean": false})
        };
        let present = |extra: Value| {
            let log = Paho::run(&spec_with(&b, "dev-1", p, extra, json!([["disconnect"]])));
            evs(&log, "connack")[0]["session_present"]
                .as_bool()
                .unwrap()
        };
        assert!(
            !present(persistent.clone()),
            "first connect: no session (MQTT {p})"
        );
        assert!(
            present(persistent.clone()),
            "second connect resumes (MQTT {p})"
        );
        assert!(
            !present(json!({"clean": true})),
            "clean start discards (MQTT {p})"
        );
        assert!(
            !present(persistent),
            "...so nothing to resume after it (MQTT {p})"
        );
    }
}

#[test]
fn qos_0_1_2_delivered_at_min_of_publish_and_subscription_qos() {
    for p in PROTOCOLS {
        for sub_qos in [1u8, 2] {
            let b = TestBroker::start();
            let w = watcher(&b, p, "devices/+/telemetry", sub_qos, 2.0);
            let log = Paho::run(&spec_with(
                &b,
                "dev-1",
                p,
                json!({}),
                json!([
                    ["publish", "devices/dev-1/telemetry", "q0", 0, false],
                    ["publish", "devices/dev-1/telemetry", "q1", 1, false],
                    ["publish", "devices/dev-1/telemetry", "q2", 2, false],
                    ["disconnect"]
                ]),
            ));
            // paho reports on_publish for QoS 0 once sent, for QoS 1/2 on PUBACK/PUBCOMP.
            let acks = evs(&log, "puback");
            assert_eq!(acks.len(), 3, "{log:?}");
            assert!(acks.iter().all(|a| a["rc"] == 0), "{log:?}");
            let got = w.finish();
            let msgs: Vec<(String, u64)> = evs(&got, "message")
                .iter()
                .map(|m| {
                    (
                        m["payload"].as_str().unwrap().to_string(),
                        m["qos"].as_u64().unwrap(),
                    )
                })
                .collect();
            let want = vec![
                ("q0".to_string(), 0),
                ("q1".to_string(), 1),
                ("q2".to_string(), u64::from(sub_qos.min(2))),
            ];
            assert_eq!(msgs, want, "MQTT {p}, subscription QoS {sub_qos}");
        }
    }
}

#[test]
fn retained_messages_stored_delivered_and_deleted() {
    for p in PROTOCOLS {
        let b = TestBroker::start();
        let live = watcher(&b, p, "devices/+/status", 1, 1.5);
        let pub_log = Paho::run(&spec_with(
            &b,
            "dev-1",
            p,
            json!({}),
            json!([
                ["publish", "devices/dev-1/status", "online", 1, true],
                ["disconnect"]
            ]),
        ));
        assert_eq!(evs(&pub_log, "puback")[0]["rc"], 0);
        let live = live.finish();
        let m = evs(&live, "message");
        assert_eq!(m.len(), 1, "{live:?}");
        assert_eq!(
            m[0]["retain"], false,
            "live delivery clears RETAIN [MQTT-3.3.1-9] (MQTT {p})"
        );

        // A new subscriber gets the retained message, flagged.
        let late = Paho::run(&spec_with(
            &b,
            "backend",
            p,
            json!({}),
            json!([
                ["subscribe", "devices/+/status", 1],
                ["wait_messages", 1, 3]
            ]),
        ));
        let m = evs(&late, "message");
        assert_eq!(m.len(), 1, "{late:?}");
        assert_eq!(
            (m[0]["payload"].as_str(), m[0]["retain"].as_bool()),
            (Some("online"), Some(true))
        );
        assert_eq!(b.handle.stats().retained_messages, 1);

        // An empty retained payload deletes it.
        Paho::run(&spec_with(
            &b,
            "dev-1",
            p,
            json!({}),
            json!([
                ["publish", "devices/dev-1/status", "", 1, true],
                ["disconnect"]
            ]),
        ));
        assert_eq!(b.handle.stats().retained_messages, 0);
        let after = Paho::run(&spec_with(
            &b,
            "backend",
            p,
            json!({}),
            json!([["subscribe", "devices/+/status", 1], ["sleep", 0.5]]),
        ));
        assert!(evs(&after, "message").is_empty(), "{after:?}");
    }
}

#[test]
fn retained_delivery_is_decided_by_receive() {
    // dev-2 may not receive dev-1's status even though a retained message exists on a topic
    // its (overridden) subscribe grant covers.
    let b = TestBroker::start();
    b.policies.update(|s| {
        s.devices.insert(
            "dev-2".into(),
            vec![policy(
                "status-watcher",
                ironroot_policy::Attachment::Device,
                r#"{"Version":"2012-10-17","Statement":[
                  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/+/status"},
                  {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/devices/dev-2/status"}]}"#,
            )],
        );
    });
    Paho::run(&spec_with(
        &b,
        "dev-1",
        5,
        json!({}),
        json!([
            ["publish", "devices/dev-1/status", "secret", 1, true],
            ["disconnect"]
        ]),
    ));
    let log = Paho::run(&spec_with(
        &b,
        "dev-2",
        5,
        json!({}),
        json!([["subscribe", "devices/+/status", 1], ["sleep", 0.5]]),
    ));
    assert_eq!(evs(&log, "suback")[0]["codes"], json!([1]));
    assert!(evs(&log, "message").is_empty(), "{log:?}");
}

fn will_spec(b: &TestBroker, p: u8, steps: Value, delay: u32, expiry: u32) -> Value {
    let mut s = spec_with(
        b,
        "dev-1",
        p,
        json!({"session_expiry": expiry, "clean": true}),
        steps,
    );
    s["will"] =
        json!({"topic": "devices/dev-1/status", "payload": "offline", "qos": 1, "delay": delay});
    s
}

#[test]
fn will_published_on_abnormal_close_not_on_disconnect() {
    for p in PROTOCOLS {
        let b = TestBroker::start();
        let w = watcher(&b, p, "devices/+/status", 1, 2.0);
        Paho::run(&will_spec(&b, p, json!([["disconnect"]]), 0, 0));
        Paho::run(&will_spec(&b, p, json!([["abort"]]), 0, 0));
        let log = w.finish();
        assert_eq!(
            payloads(&log),
            vec!["offline"],
            "one will, from the aborted connection (MQTT {p}): {log:?}"
        );
        assert!(
            b.wait_event(Duration::from_secs(2), |e| matches!(e, BrokerEvent::WillPublished { device_id, .. } if device_id == "dev-1"))
                .is_some()
        );
    }
}

#[test]
fn will_on_disconnect_with_will_message_mqtt5() {
    let b = TestBroker::start();
    let w = watcher(&b, 5, "devices/+/status", 1, 1.5);
    Paho::run(&will_spec(&b, 5, json!([["disconnect_with_will"]]), 0, 0));
    assert_eq!(payloads(&w.finish()), vec!["offline"]);
}

#[test]
fn will_delay_mqtt5() {
    let b = TestBroker::start();
    let w = watcher(&b, 5, "devices/+/status", 1, 4.0);
    // Dropped, then back within the delay: the resumed session cancels the will.
    Paho::run(&will_spec(&b, 5, json!([["abort"]]), 2, 30));
    let mut s = spec_with(
        &b,
        "dev-1",
        5,
        json!({"clean": false, "session_expiry": 30}),
        json!([["disconnect"]]),
    );
    s["will"] = json!({"topic": "devices/dev-1/status", "payload": "second", "qos": 1});
    let log = Paho::run(&s);
    assert_eq!(evs(&log, "connack")[0]["session_present"], true);
    // Dropped again and not back: the will goes out after the delay.
    let t0 = Instant::now();
    Paho::run(&will_spec(&b, 5, json!([["abort"]]), 1, 30));
    assert!(
        b.wait_event(Duration::from_secs(3), |e| matches!(
            e,
            BrokerEvent::WillPublished { .. }
        ))
        .is_some()
    );
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "will came after {waited:?}, before its delay"
    );
    assert_eq!(payloads(&w.finish()), vec!["offline"]);
}

#[test]
fn keepalive_timeout_closes_connection_and_publishes_will() {
    for p in PROTOCOLS {
        let b = TestBroker::start();
        let w = watcher(&b, p, "devices/+/status", 1, 5.0);
        let mut s = will_spec(&b, p, json!([["hang", 6]]), 0, 0);
        s["keepalive"] = json!(2);
        let log = Paho::run(&s);
        let closed = evs(&log, "closed_by_broker");
        assert_eq!(closed.len(), 1, "{log:?}");
        let after = closed[0]["after"].as_f64().unwrap();
        assert!(
            (2.5..5.0).contains(&after),
            "closed after {after} s; 1.5 × keep-alive is 3 s (MQTT {p})"
        );
        assert!(
            b.wait_event(Duration::from_secs(2), |e| matches!(
                e,
                BrokerEvent::Disconnected {
                    cause: DisconnectCause::KeepAliveTimeout,
                    ..
                }
            ))
            .is_some(),
            "{:?}",
            b.events()
        );
        assert_eq!(payloads(&w.finish()), vec!["offline"], "MQTT {p}");
    }
}

#[test]
fn unsubscribe_stops_deliveries() {
    for p in PROTOCOLS {
        let b = TestBroker::start();
        let mut w = Paho::spawn(&spec_with(
            &b,
            "backend",
            p,
            json!({}),
            json!([
                ["subscribe", "devices/+/telemetry", 1],
                ["wait_messages", 1, 5],
                ["unsubscribe", "devices/+/telemetry"],
                ["sleep", 1.0]
            ]),
        ));
        assert!(w.wait_ev("suback", Duration::from_secs(5)).is_some());
        let publish = |m: &str| {
            Paho::run(&spec_with(
                &b,
                "dev-1",
                p,
                json!({}),
                json!([
                    ["publish", "devices/dev-1/telemetry", m, 1, false],
                    ["disconnect"]
                ]),
            ))
        };
        publish("one");
        assert!(
            w.wait_ev("unsuback", Duration::from_secs(5)).is_some(),
            "{:?}",
            w.seen
        );
        assert!(wait_until(Duration::from_secs(2), || b
            .handle
            .stats()
            .subscriptions
            == 0));
        publish("two");
        let log = w.finish();
        assert_eq!(payloads(&log), vec!["one"], "MQTT {p}");
    }
}

#[test]
fn persistent_session_queues_qos1_while_offline() {
    for p in PROTOCOLS {
        let b = TestBroker::start();
        let persistent = if p == 5 {
            json!({"clean": false, "session_expiry": 60})
        } else {
            json!({"clean": false})
        };
        Paho::run(&spec_with(
            &b,
            "backend",
            p,
            persistent.clone(),
            json!([["subscribe", "devices/+/telemetry", 1], ["disconnect"]]),
        ));
        assert!(!b.handle.is_connected("backend"));
        assert_eq!(
            b.handle.stats().subscriptions,
            1,
            "the subscription outlives the connection"
        );
        Paho::run(&spec_with(
            &b,
            "dev-1",
            p,
            json!({}),
            json!([
                ["publish", "devices/dev-1/telemetry", "a", 1, false],
                ["publish", "devices/dev-1/telemetry", "zero", 0, false],
                ["publish", "devices/dev-1/telemetry", "b", 2, false],
                ["disconnect"]
            ]),
        ));
        let log = Paho::run(&spec_with(
            &b,
            "backend",
            p,
            persistent,
            json!([["wait_messages", 2, 5]]),
        ));
        assert_eq!(evs(&log, "connack")[0]["session_present"], true);
        assert_eq!(
            payloads(&log),
            vec!["a", "b"],
            "QoS 1/2 queued in order, QoS 0 not queued (MQTT {p})"
        );
        let dropped = b.handle.device_stats("backend").unwrap().messages_dropped;
        assert_eq!(
            dropped, 1,
            "the offline QoS 0 message is counted as dropped"
        );
    }
}

#[test]
fn session_expiry_mqtt5() {
    let b = TestBroker::start();
    Paho::run(&spec_with(
        &b,
        "backend",
        5,
        json!({"clean": false, "session_expiry": 1}),
        json!([["subscribe", "devices/+/telemetry", 1], ["disconnect"]]),
    ));
    assert_eq!(b.handle.stats().sessions, 1);
    assert!(
        b.wait_event(
            Duration::from_secs(3),
            |e| matches!(e, BrokerEvent::SessionExpired { device_id, .. } if device_id == "backend")
        )
        .is_some()
    );
    assert_eq!(b.handle.stats().sessions, 0);
    assert_eq!(b.handle.stats().subscriptions, 0);
    let log = Paho::run(&spec_with(
        &b,
        "backend",
        5,
        json!({"clean": false, "session_expiry": 1}),
        json!([["disconnect"]]),
    ));
    assert_eq!(evs(&log, "connack")[0]["session_present"], false);
}

#[test]
fn clean_session_v3_ends_with_the_connection() {
    let b = TestBroker::start();
    Paho::run(&spec_with(
        &b,
        "backend",
        4,
        json!({"clean": true}),
        json!([["subscribe", "devices/+/telemetry", 1], ["disconnect"]]),
    ));
    assert!(wait_until(Duration::from_secs(2), || b
        .handle
        .stats()
        .sessions
        == 0));
    assert_eq!(b.handle.stats().subscriptions, 0);
}

#[test]
fn v5_properties_forwarded() {
    let b = TestBroker::start();
    let w = watcher(&b, 5, "devices/+/telemetry", 1, 1.5);
    Paho::run(&spec_with(
        &b,
        "dev-1",
        5,
        json!({}),
        json!([
            ["publish", "devices/dev-1/telemetry", "{}", 1, false, {
                "ContentType": "application/json",
                "MessageExpiryInterval": 60,
                "UserProperty": [["fw", "1.2.3"]]
            }],
            ["disconnect"]
        ]),
    ));
    let log = w.finish();
    let m = evs(&log, "message");
    assert_eq!(m.len(), 1, "{log:?}");
    let props = &m[0]["props"];
    assert_eq!(props["ContentType"], "application/json");
    assert_eq!(props["UserProperty"], json!([["fw", "1.2.3"]]));
    let expiry = props["MessageExpiryInterval"].as_u64().unwrap();
    assert!((59..=60).contains(&expiry), "remaining expiry {expiry}");
}
