//! MQTT 5 features against paho-mqtt 2: request/response properties, server keep alive,
//! subscription identifiers, the assigned client identifier, topic aliases in both directions.

use std::time::Duration;

use ironroot_broker::{Limits, PolicySnapshot};
use ironroot_policy::Attachment;
use serde_json::{Value, json};

use crate::harness::*;
use crate::pki::key_der;
use crate::raw;

const TOPIC_ALIAS_INVALID: u64 = 0x94;
const NOT_AUTHORIZED: u64 = 0x87;

fn spec_with(b: &TestBroker, id: &str, extra: Value, steps: Value) -> Value {
    let c = b.client(id);
    let mut s = paho_spec(b, &c, id, 5, steps);
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// Starts `id` with `steps` and waits for its first SUBACK.
fn subscribed(b: &TestBroker, id: &str, extra: Value, steps: Value) -> Paho {
    let mut p = Paho::spawn(&spec_with(b, id, extra, steps));
    assert!(
        p.wait_ev("suback", Duration::from_secs(10)).is_some(),
        "{:?} {}",
        p.seen,
        p.stderr()
    );
    p
}

fn messages(log: &[Value]) -> Vec<Value> {
    evs(log, "message").into_iter().cloned().collect()
}

#[test]
fn request_response_round_trip_keeps_response_topic_and_correlation_data() {
    let b = TestBroker::start();
    // The device waits for one request, then leaves.
    let device = subscribed(
        &b,
        "dev-1",
        json!({}),
        json!([
            ["subscribe", "devices/dev-1/commands", 1],
            ["wait_messages", 1, 10],
            ["disconnect"]
        ]),
    );
    // The requester listens on the response topic, then sends the request.
    let requester = subscribed(
        &b,
        "backend",
        json!({}),
        json!([
            ["subscribe", "devices/+/telemetry", 1],
            ["publish", "devices/dev-1/commands", "reboot?", 1, false,
                {"ResponseTopic": "devices/dev-1/telemetry", "CorrelationData": "req-42",
                 "ContentType": "text/plain", "UserProperty": [["trace", "t-1"]]}],
            ["wait_messages", 1, 10]
        ]),
    );
    let got = messages(&device.finish());
    assert_eq!(got.len(), 1, "request not delivered: {got:?}");
    let props = &got[0]["props"];
    assert_eq!(props["ResponseTopic"], "devices/dev-1/telemetry", "{props}");
    assert_eq!(props["CorrelationData"], "req-42", "{props}");
    assert_eq!(props["ContentType"], "text/plain", "{props}");
    assert_eq!(props["UserProperty"], json!([["trace", "t-1"]]), "{props}");
    // The device answers on the response topic with the correlation data it was given.
    let reply = Paho::run(&spec_with(
        &b,
        "dev-1",
        json!({}),
        json!([["publish", props["ResponseTopic"], "ok", 1, false,
            {"CorrelationData": props["CorrelationData"]}], ["disconnect"]]),
    ));
    assert_eq!(evs(&reply, "puback")[0]["rc"], 0, "{reply:?}");
    let got = messages(&requester.finish());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], "ok");
    assert_eq!(got[0]["props"]["CorrelationData"], "req-42", "{got:?}");
}

#[test]
fn server_keep_alive_sent_only_when_lowered_and_enforced() {
    let mut limits = Limits::default();
    limits.max_keepalive_secs = 2;
    let b = TestBroker::start_with(limits);
    let within = Paho::run(&spec_with(
        &b,
        "dev-1",
        json!({"keepalive": 1}),
        json!([["disconnect"]]),
    ));
    let ack = evs(&within, "connack")[0];
    assert_eq!(ack["rc"], 0);
    assert!(
        ack["props"].get("ServerKeepAlive").is_none(),
        "not lowered, not sent: {ack}"
    );
    // Asks for 60 s, gets 2 s; a client that then stays silent is cut after 1.5 x 2 s, not
    // after the 90 s its own keep-alive would allow.
    let log = Paho::run(&spec_with(
        &b,
        "dev-1",
        json!({"keepalive": 60}),
        json!([["hang", 10]]),
    ));
    let ack = evs(&log, "connack")[0];
    assert_eq!(ack["props"]["ServerKeepAlive"], 2, "{ack}");
    let closed = evs(&log, "closed_by_broker")[0]["after"].as_f64().unwrap();
    assert!(
        (2.0..5.0).contains(&closed),
        "cut after {closed} s: {log:?}"
    );
}

/// A service that may subscribe to and receive every device topic.
fn svc_snapshot() -> PolicySnapshot {
    let mut snap = standard_snapshot();
    snap.devices.insert(
        "svc".into(),
        vec![policy(
            "svc",
            Attachment::Device,
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/*"},
            {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/devices/*"}]}"#,
        )],
    );
    snap
}

#[test]
fn subscription_identifiers_of_every_matching_subscription_in_one_publish() {
    let b = TestBroker::start_full(Limits::default(), svc_snapshot());
    let svc = subscribed(
        &b,
        "svc",
        json!({}),
        json!([
            ["subscribe", "devices/+/telemetry", 1, {"sub_id": 7}],
            ["subscribe", "devices/#", 1, {"sub_id": 9}],
            ["subscribe", "devices/dev-1/+", 0],
            ["wait_messages", 2, 10]
        ]),
    );
    assert!(b.wait_subscriptions(3, Duration::from_secs(5)));
    let log = Paho::run(&spec_with(
        &b,
        "dev-1",
        json!({}),
        json!([
            ["publish", "devices/dev-1/telemetry", "t", 1, false],
            ["publish", "devices/dev-1/status", "s", 1, false],
            ["disconnect"]
        ]),
    ));
    let ack = evs(&log, "connack")[0];
    assert_ne!(
        ack["props"].get("SubscriptionIdentifierAvailable"),
        Some(&json!(0)),
        "{ack}"
    );
    let got = messages(&svc.finish());
    assert_eq!(got.len(), 2, "one PUBLISH per message: {got:?}");
    let ids = |m: &Value| {
        let mut v: Vec<u64> = m["props"]["SubscriptionIdentifier"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_u64().unwrap()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let tele = got.iter().find(|m| m["payload"] == "t").unwrap();
    let status = got.iter().find(|m| m["payload"] == "s").unwrap();
    assert_eq!(ids(tele), vec![7, 9], "{tele}");
    assert_eq!(tele["qos"], 1, "highest granted QoS");
    assert_eq!(ids(status), vec![9], "{status}");
}

#[test]
fn zero_length_client_id_gets_the_device_id() {
    let b = TestBroker::start();
    let c = b.client("dev-1");
    // MQTT 5: assigned, and returned in CONNACK.
    let mut dev = Paho::spawn(&paho_spec(
        &b,
        &c,
        "",
        5,
        json!([
            ["subscribe", "devices/dev-1/commands", 1],
            ["wait_messages", 1, 10]
        ]),
    ));
    let ack = dev.wait_ev("connack", Duration::from_secs(10)).unwrap();
    assert_eq!(ack["rc"], 0, "{ack}");
    assert_eq!(ack["props"]["AssignedClientIdentifier"], "dev-1", "{ack}");
    assert!(dev.wait_ev("suback", Duration::from_secs(5)).is_some());
    assert!(b.wait_connected("dev-1", true, Duration::from_secs(5)));
    // The session lives under the device id: commands for dev-1 reach it.
    Paho::run(&spec_with(
        &b,
        "backend",
        json!({}),
        json!([
            ["publish", "devices/dev-1/commands", "hello", 1, false],
            ["disconnect"]
        ]),
    ));
    let got = messages(&dev.finish());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], "hello");
    // MQTT 3.1.1 with clean session: assigned as well (no property to carry it).
    let log = Paho::run(&paho_spec(
        &b,
        &c,
        "",
        4,
        json!([["subscribe", "devices/dev-1/commands", 1], ["disconnect"]]),
    ));
    assert_eq!(evs(&log, "connack")[0]["rc"], 0, "{log:?}");
    assert_eq!(evs(&log, "suback")[0]["codes"], json!([1]), "{log:?}");
}

#[test]
fn inbound_topic_aliases_resolved_bounded_and_authorized() {
    let b = TestBroker::start();
    let backend = subscribed(
        &b,
        "backend",
        json!({}),
        json!([
            ["subscribe", "devices/+/telemetry", 1],
            ["wait_messages", 2, 10]
        ]),
    );
    let log = Paho::run(&spec_with(
        &b,
        "dev-1",
        json!({}),
        json!([
            ["publish", "devices/dev-1/telemetry", "full", 1, false, {"TopicAlias": 1}],
            ["publish", "", "aliased", 1, false, {"TopicAlias": 1}],
            // The policy decides on the topic an alias stands for.
            ["publish", "devices/dev-2/telemetry", "x", 1, false, {"TopicAlias": 2}],
            ["publish", "", "y", 1, false, {"TopicAlias": 2}],
            ["disconnect"]
        ]),
    ));
    assert_eq!(evs(&log, "connack")[0]["props"]["TopicAliasMaximum"], 16);
    let rcs: Vec<u64> = evs(&log, "puback")
        .iter()
        .map(|a| a["rc"].as_u64().unwrap())
        .collect();
    assert_eq!(rcs, vec![0, 0, NOT_AUTHORIZED, NOT_AUTHORIZED], "{log:?}");
    let got = messages(&backend.finish());
    let seen: Vec<(&str, &str)> = got
        .iter()
        .map(|m| (m["topic"].as_str().unwrap(), m["payload"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("devices/dev-1/telemetry", "full"),
            ("devices/dev-1/telemetry", "aliased")
        ]
    );
    // An alias above the maximum, or one never set, closes the connection with 0x94.
    for steps in [
        json!([["publish", "devices/dev-1/telemetry", "big", 1, false, {"TopicAlias": 17}],
               ["wait_disconnect", 5]]),
        json!([["publish", "", "unknown", 1, false, {"TopicAlias": 3}], ["wait_disconnect", 5]]),
    ] {
        let log = Paho::run(&spec_with(&b, "dev-1", json!({}), steps));
        let disc = evs(&log, "disconnect");
        assert_eq!(
            disc.first().map(|d| d["rc"].clone()),
            Some(json!(TOPIC_ALIAS_INVALID)),
            "{log:?}"
        );
    }
}

#[test]
fn outbound_topic_aliases_honour_the_client_maximum() {
    let b = TestBroker::start();
    let with_aliases = subscribed(
        &b,
        "backend",
        json!({"topic_alias_max": 1}),
        json!([
            ["subscribe", "devices/+/telemetry", 0],
            ["wait_messages", 4, 10]
        ]),
    );
    assert!(b.wait_subscriptions(1, Duration::from_secs(5)));
    for dev in ["dev-1", "dev-2"] {
        Paho::run(&spec_with(
            &b,
            dev,
            json!({}),
            json!([
                ["publish", format!("devices/{dev}/telemetry"), "a", 1, false],
                ["publish", format!("devices/{dev}/telemetry"), "b", 1, false],
                ["disconnect"]
            ]),
        ));
    }
    let got = messages(&with_aliases.finish());
    let seen: Vec<(String, Option<u64>)> = got
        .iter()
        .map(|m| {
            (
                m["topic"].as_str().unwrap().to_string(),
                m["props"]["TopicAlias"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("devices/dev-1/telemetry".to_string(), Some(1)),
            (String::new(), Some(1)),
            ("devices/dev-2/telemetry".to_string(), None),
            ("devices/dev-2/telemetry".to_string(), None),
        ],
        "first topic aliased (full, then alias only); the maximum of 1 is not exceeded"
    );
    // A client that announces no maximum gets full topics only.
    let plain = subscribed(
        &b,
        "backend",
        json!({}),
        json!([
            ["subscribe", "devices/+/telemetry", 0],
            ["wait_messages", 2, 10]
        ]),
    );
    assert!(b.wait_subscriptions(1, Duration::from_secs(5)));
    Paho::run(&spec_with(
        &b,
        "dev-1",
        json!({}),
        json!([
            ["publish", "devices/dev-1/telemetry", "a", 1, false],
            ["publish", "devices/dev-1/telemetry", "b", 1, false],
            ["disconnect"]
        ]),
    ));
    let got = messages(&plain.finish());
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter()
            .all(|m| m["topic"] == "devices/dev-1/telemetry"
                && m["props"].get("TopicAlias").is_none()),
        "{got:?}"
    );
}

/// SUBSCRIBE with a subscription identifier property (`0x0B`, variable byte integer `id`).
fn subscribe_with_id(pid: u16, filter: &str, id: u8) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    b.extend_from_slice(&[2, 0x0B, id]);
    b.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    b.extend_from_slice(filter.as_bytes());
    b.push(1);
    raw::packet(0x82, &b)
}

#[test]
fn subscription_identifier_zero_is_malformed() {
    use tokio::io::AsyncWriteExt;
    let b = TestBroker::start();
    let c = b.client("dev-1");
    let cfg = raw::client_config(&b.pki.ca_der, c.cert_der.clone(), key_der(&c.key_pem));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let v5 = raw::ConnectOpts {
            v5: true,
            ..raw::ConnectOpts::default()
        };
        for (id, ok) in [(5u8, true), (0, false)] {
            let mut io = raw::dial(b.port, cfg.clone()).await.unwrap();
            assert_eq!(raw::mqtt_connect(&mut io, "dev-1", &v5).await.unwrap().1, 0);
            io.write_all(&subscribe_with_id(1, "devices/dev-1/commands", id))
                .await
                .unwrap();
            io.flush().await.unwrap();
            let p = raw::read_timeout(&mut io, Duration::from_secs(5))
                .await
                .expect("an answer")
                .expect("a packet");
            if ok {
                assert_eq!(p.kind(), 0x90, "SUBACK for id {id}");
                assert_eq!(p.body.last(), Some(&1), "granted QoS 1");
            } else {
                assert_eq!(p.kind(), 0xE0, "DISCONNECT for id 0: {p:?}");
                assert_eq!(p.body.first(), Some(&0x81), "Malformed Packet");
            }
        }
    });
}
