//! MQTT 5 shared subscriptions (`$share/<group>/<filter>`) against paho-mqtt 2: one member of
//! a group per message, balanced; members leaving; no retained messages; the policy decides
//! on the `$share/...` filter string and on each delivered topic.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ironroot_broker::{Limits, PolicySnapshot};
use ironroot_policy::Attachment;
use serde_json::{Value, json};

use crate::harness::*;
use crate::pki::TempDir;

const TOPIC_FILTER_INVALID: u64 = 0x8F;
const NOT_AUTHORIZED: u64 = 0x87;
const PROTOCOL_ERROR: u64 = 0x82;

/// Workers may join the `ingest` group on telemetry and status (and nothing outside it);
/// `worker-4` may subscribe but not receive `dev-2`'s telemetry.
fn snapshot() -> PolicySnapshot {
    let mut snap = standard_snapshot();
    for i in 1..=5 {
        let deny = if i == 4 {
            r#",{"Effect":"Deny","Action":"iot:Receive","Resource":"topic/devices/dev-2/telemetry"}"#
        } else {
            ""
        };
        snap.devices.insert(
            format!("worker-{i}"),
            vec![policy(
                "worker",
                Attachment::Device,
                &format!(
                    r#"{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":"iot:Subscribe","Resource":[
                        "topicfilter/$share/ingest/devices/+/telemetry",
                        "topicfilter/$share/ingest/devices/+/status",
                        "topicfilter/$share/+/devices/+/telemetry",
                        "topicfilter/$share/ingest"]}},
                    {{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/devices/*"}}{deny}]}}"#
                ),
            )],
        );
    }
    snap
}

/// A subscriber of `filter` that collects messages until the test creates `go`, and one more
/// second.
fn member(b: &TestBroker, id: &str, filter: &str, go: &Path) -> Paho {
    let c = b.client(id);
    let mut p = Paho::spawn(&paho_spec(
        b,
        &c,
        id,
        5,
        json!([
            ["subscribe", filter, 1],
            ["wait_file", go, 30],
            ["sleep", 1.0]
        ]),
    ));
    let ack = p
        .wait_ev("suback", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{id}: {:?} {}", p.seen, p.stderr()));
    assert_eq!(ack["codes"], json!([1]), "{id}: {ack}");
    p
}

fn publish(b: &TestBroker, dev: &str, topic: &str, from: usize, n: usize) {
    let steps: Vec<Value> = (from..from + n)
        .map(|i| json!(["publish", topic, format!("m{i}"), 1, false]))
        .chain(std::iter::once(json!(["disconnect"])))
        .collect();
    let c = b.client(dev);
    let log = Paho::run(&paho_spec(b, &c, dev, 5, json!(steps)));
    let acks = evs(&log, "puback");
    assert_eq!(acks.len(), n, "{log:?}");
    assert!(acks.iter().all(|a| a["rc"] == 0), "{log:?}");
}

#[test]
fn each_group_message_reaches_exactly_one_member_balanced() {
    const N: usize = 40;
    let b = TestBroker::start_full(Limits::default(), snapshot());
    let share = "$share/ingest/devices/+/telemetry";
    let dir = TempDir::new("share");
    let go = dir.path().join("go");
    let members: Vec<Paho> = (1..=3)
        .chain(5..=5)
        .map(|i| member(&b, &format!("worker-{i}"), share, &go))
        .collect();
    let outside = member(&b, "backend", "devices/+/telemetry", &go);
    assert!(b.wait_subscriptions(5, Duration::from_secs(5)));
    let first = evs(&members[0].seen, "connack")[0].clone();
    assert_ne!(
        first["props"].get("SharedSubscriptionAvailable"),
        Some(&json!(0)),
        "{first}"
    );
    publish(&b, "dev-1", "devices/dev-1/telemetry", 0, N);
    std::fs::write(&go, b"").unwrap();
    let mut per_member = Vec::new();
    let mut all: Vec<String> = Vec::new();
    for m in members {
        let got = payloads(&m.finish());
        per_member.push(got.len());
        all.extend(got);
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        all.len(),
        N,
        "exactly once across the group: {per_member:?}"
    );
    assert_eq!(unique.len(), N, "no duplicates: {all:?}");
    assert!(
        per_member.iter().all(|&n| n >= N / 4 - 3),
        "roughly balanced: {per_member:?}"
    );
    assert_eq!(
        payloads(&outside.finish()).len(),
        N,
        "the outside subscriber gets all"
    );
}

#[test]
fn a_member_that_leaves_stops_receiving_and_receive_is_decided_per_member() {
    let b = TestBroker::start_full(Limits::default(), snapshot());
    let share = "$share/ingest/devices/+/telemetry";
    // worker-4 may not receive dev-2's telemetry: those messages go to the other member.
    let dir = TempDir::new("share");
    let go = dir.path().join("go");
    let w1 = member(&b, "worker-1", share, &go);
    let c = b.client("worker-4");
    let mut w4 = Paho::spawn(&paho_spec(
        &b,
        &c,
        "worker-4",
        5,
        json!([
            ["subscribe", share, 1],
            ["wait_messages", 5, 10],
            ["disconnect"]
        ]),
    ));
    assert!(w4.wait_ev("suback", Duration::from_secs(10)).is_some());
    assert!(b.wait_subscriptions(2, Duration::from_secs(5)));
    publish(&b, "dev-2", "devices/dev-2/telemetry", 0, 6);
    publish(&b, "dev-1", "devices/dev-1/telemetry", 6, 10);
    let w4_got = payloads(&w4.finish());
    assert_eq!(w4_got.len(), 5, "{w4_got:?}");
    assert!(
        w4_got
            .iter()
            .all(|p| p["m".len()..].parse::<usize>().unwrap() >= 6),
        "nothing iot:Receive denies: {w4_got:?}"
    );
    // worker-4 disconnected (no persistent session): everything now goes to worker-1.
    assert!(wait_until(Duration::from_secs(5), || b
        .handle
        .stats()
        .subscriptions
        == 1));
    publish(&b, "dev-1", "devices/dev-1/telemetry", 16, 4);
    std::fs::write(&go, b"").unwrap();
    let w1_got = payloads(&w1.finish());
    let mut all: Vec<String> = w1_got.clone();
    all.extend(w4_got);
    all.sort_by_key(|p| p[1..].parse::<usize>().unwrap());
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(
        all, want,
        "each message once, none lost: worker-1 got {w1_got:?}"
    );
}

#[test]
fn shared_subscribe_gets_no_retained_messages_and_checks_filter_and_policy() {
    let b = TestBroker::start_full(Limits::default(), snapshot());
    let c = b.client("dev-1");
    let log = Paho::run(&paho_spec(
        &b,
        &c,
        "dev-1",
        5,
        json!([
            ["publish", "devices/dev-1/status", "online", 1, true],
            ["disconnect"]
        ]),
    ));
    assert_eq!(evs(&log, "puback")[0]["rc"], 0, "{log:?}");
    let w = b.client("worker-1");
    let log = Paho::run(&paho_spec(
        &b,
        &w,
        "worker-1",
        5,
        json!([
            ["subscribe", "$share/ingest/devices/+/status", 1],
            ["subscribe", "$share/+/devices/+/telemetry", 1],
            ["subscribe", "$share/ingest", 1],
            ["subscribe", "$share/other/devices/+/status", 1],
            ["sleep", 1.0],
            ["disconnect"]
        ]),
    ));
    let codes: Vec<Value> = evs(&log, "suback")
        .iter()
        .map(|a| a["codes"][0].clone())
        .collect();
    assert_eq!(
        codes,
        vec![
            json!(1),
            json!(TOPIC_FILTER_INVALID),
            json!(TOPIC_FILTER_INVALID),
            json!(NOT_AUTHORIZED)
        ],
        "group named by the policy is granted; '+' as group, no filter: invalid; another group: denied"
    );
    assert!(
        evs(&log, "message").is_empty(),
        "retained message sent: {log:?}"
    );
    // The same retained message does reach an ordinary subscription.
    let backend = b.client("backend");
    let log = Paho::run(&paho_spec(
        &b,
        &backend,
        "backend",
        5,
        json!([
            ["subscribe", "devices/+/status", 1],
            ["wait_messages", 1, 5],
            ["disconnect"]
        ]),
    ));
    assert_eq!(payloads(&log), vec!["online".to_string()], "{log:?}");
}

#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let b = TestBroker::start_full(Limits::default(), snapshot());
    let w = b.client("worker-1");
    let ok = Paho::run(&paho_spec(
        &b,
        &w,
        "worker-1",
        5,
        json!([
            ["subscribe", "$share/ingest/devices/+/telemetry", 1],
            ["disconnect"]
        ]),
    ));
    assert_eq!(evs(&ok, "suback")[0]["codes"], json!([1]), "{ok:?}");
    let log = Paho::run(&paho_spec(
        &b,
        &w,
        "worker-1",
        5,
        json!([
            ["subscribe", "$share/ingest/devices/+/telemetry", 1, {"no_local": true}],
            ["wait_disconnect", 5]
        ]),
    ));
    let rc = evs(&log, "disconnect").first().map(|d| d["rc"].clone());
    assert_eq!(rc, Some(json!(PROTOCOL_ERROR)), "{log:?}");
}

#[test]
fn mosquitto_sub_members_share_a_group_over_mqtt5_and_311() {
    const N: usize = 10;
    let b = TestBroker::start_full(Limits::default(), snapshot());
    let subs: Vec<Background> = [("worker-1", true), ("worker-2", false)]
        .into_iter()
        .map(|(id, v5)| {
            let c = b.client(id);
            let mut cmd = mosquitto("mosquitto_sub", &b, &c, id, v5);
            cmd.args([
                "-t",
                "$share/ingest/devices/+/telemetry",
                "-q",
                "1",
                "-W",
                "6",
            ]);
            Background::spawn(cmd)
        })
        .collect();
    assert!(b.wait_subscriptions(2, Duration::from_secs(5)));
    publish(&b, "dev-1", "devices/dev-1/telemetry", 0, N);
    let mut all: Vec<String> = Vec::new();
    let mut per_member = Vec::new();
    for s in subs {
        let (_, lines) = s.finish(Duration::from_secs(10));
        let got: Vec<String> = lines.into_iter().filter(|l| l.starts_with('m')).collect();
        per_member.push(got.len());
        all.extend(got);
    }
    all.sort_by_key(|p| p[1..].parse::<usize>().unwrap());
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(all, want, "each message to one member: {per_member:?}");
    assert_eq!(per_member, vec![N / 2, N / 2], "round-robin");
}

/// QoS 1 into a group whose only member stopped reading: the publisher is held, then refused
/// (`0x97`), never acknowledged for a message no member queued; once a member with room joins,
/// messages go to it without waiting.
#[test]
fn qos1_backpressure_holds_for_a_stalled_group_and_a_member_with_room_is_preferred() {
    use crate::overload::open;
    use crate::raw;
    use tokio::io::AsyncWriteExt;
    let mut limits = Limits::default();
    limits.max_queued_messages = 5;
    limits.backpressure_timeout = Duration::from_millis(300);
    let b = TestBroker::start_full(limits, snapshot());
    let share = "$share/ingest/devices/+/telemetry";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut stalled = open(&b, "worker-1", true).await;
        stalled
            .write_all(&raw::subscribe(true, 1, share, 1))
            .await
            .unwrap();
        let suback = raw::read_timeout(&mut stalled, Duration::from_secs(5)).await;
        assert!(matches!(suback, Some(Ok(ref p)) if p.kind() == 0x90 && p.body.last() == Some(&1)));
        // worker-1 reads nothing from here on.
        let mut dev = open(&b, "dev-1", true).await;
        let publish = |pid: u16| raw::publish(true, "devices/dev-1/telemetry", 1, pid, false, b"m");
        async fn puback(io: &mut crate::raw::Tls, pid: u16) -> Option<u8> {
            loop {
                let p = raw::read_timeout(io, Duration::from_secs(10)).await?.ok()?;
                if p.kind() == 0x40 {
                    assert_eq!(u16::from_be_bytes([p.body[0], p.body[1]]), pid);
                    return Some(if p.body.len() > 2 { p.body[2] } else { 0 });
                }
            }
        }
        let mut accepted = 0;
        let mut pid = 0;
        loop {
            pid += 1;
            assert!(pid < 200, "never refused: the group's queue is not bounded");
            dev.write_all(&publish(pid)).await.unwrap();
            match puback(&mut dev, pid).await {
                Some(0) => accepted += 1,
                Some(0x97) => break,
                other => panic!("PUBACK {other:?} for message {pid}"),
            }
        }
        assert!(accepted >= 5, "the member's queue took its 5: {accepted}");
        assert_eq!(b.handle.stats().backpressure_timeouts, 1);
        // A second member with room: the next messages go to it at once.
        let dir = TempDir::new("share");
        let go = dir.path().join("go");
        let fresh = member(&b, "worker-2", share, &go);
        assert!(b.wait_subscriptions(2, Duration::from_secs(5)));
        for _ in 0..3 {
            pid += 1;
            let t0 = std::time::Instant::now();
            dev.write_all(&publish(pid)).await.unwrap();
            assert_eq!(puback(&mut dev, pid).await, Some(0));
            assert!(
                t0.elapsed() < Duration::from_millis(250),
                "not held: {:?}",
                t0.elapsed()
            );
        }
        std::fs::write(&go, b"").unwrap();
        assert_eq!(payloads(&fresh.finish()).len(), 3);
        drop(stalled);
    });
}

/// A QoS 1 message held for a stalled member moves to a member that joins with room, before
/// the backpressure timeout: the publisher is acknowledged, and that member has it.
#[test]
fn a_held_qos1_message_moves_to_a_member_with_room() {
    use crate::overload::open;
    use crate::raw;
    use tokio::io::AsyncWriteExt;
    let mut limits = Limits::default();
    limits.max_queued_messages = 5;
    limits.backpressure_timeout = Duration::from_secs(8);
    let b = TestBroker::start_full(limits, snapshot());
    let share = "$share/ingest/devices/+/telemetry";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut stalled = open(&b, "worker-1", true).await;
        stalled
            .write_all(&raw::subscribe(true, 1, share, 1))
            .await
            .unwrap();
        let suback = raw::read_timeout(&mut stalled, Duration::from_secs(5)).await;
        assert!(matches!(suback, Some(Ok(ref p)) if p.kind() == 0x90));
        let mut dev = open(&b, "dev-1", true).await;
        let mut pid = 0u16;
        // Publish until one PUBACK does not come within 500 ms: that message is held.
        loop {
            pid += 1;
            assert!(pid < 200, "never held");
            let pkt = raw::publish(true, "devices/dev-1/telemetry", 1, pid, false, b"m");
            dev.write_all(&pkt).await.unwrap();
            match raw::read_timeout(&mut dev, Duration::from_millis(500)).await {
                None => break,
                Some(Ok(p)) if p.kind() == 0x40 && (p.body.len() <= 2 || p.body[2] == 0) => {}
                other => panic!("unexpected answer to {pid}: {other:?}"),
            }
        }
        let t0 = std::time::Instant::now();
        let dir = TempDir::new("share");
        let go = dir.path().join("go");
        let fresh = member(&b, "worker-2", share, &go);
        let ack = raw::read_timeout(&mut dev, Duration::from_secs(10))
            .await
            .expect("PUBACK")
            .expect("packet");
        assert_eq!(ack.kind(), 0x40);
        assert_eq!(u16::from_be_bytes([ack.body[0], ack.body[1]]), pid);
        assert!(ack.body.len() <= 2 || ack.body[2] == 0, "success: {ack:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(6),
            "moved, not timed out: {:?}",
            t0.elapsed()
        );
        assert_eq!(b.handle.stats().backpressure_timeouts, 0);
        std::fs::write(&go, b"").unwrap();
        assert_eq!(payloads(&fresh.finish()), vec!["m".to_string()]);
        drop(stalled);
    });
}
