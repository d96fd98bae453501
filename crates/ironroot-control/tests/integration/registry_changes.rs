//! Changes made by another process through the store reach live sessions within a second:
//! revocation drops the session, quarantine narrows it, a policy change widens it.

use std::time::{Duration, Instant, SystemTime};

use ironroot_pki::Serial;
use ironroot_store::{ChangeCursor, Connection, RevocationReason, Store};
use serde_json::json;

use crate::harness::{Db, Node, Paho, both_backends, evs, mosquitto, paho_spec, run, writer};

both_backends!(
    revocation_by_another_process_drops_the_live_session,
    quarantine_and_policy_change_by_another_process_reach_live_sessions,
    regression_unknown_change_kind_does_not_stop_the_plane,
    containment_by_another_process_cuts_the_session_and_reconnects_quarantined,
);

/// Waits until the plane has applied every change up to the store's current end; returns the
/// wall-clock delay since the other process `committed`.
async fn applied_within(node: &Node, committed: SystemTime, limit: Duration) -> Duration {
    let target: ChangeCursor = node.store.change_cursor_now().await.unwrap();
    let start = Instant::now();
    while node.plane().applied_cursor() < target {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "change never applied"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let waited = SystemTime::now().duration_since(committed).unwrap();
    assert!(waited < limit, "change applied after {waited:?}");
    waited
}

async fn revocation_by_another_process_drops_the_live_session(db: Db) {
    let node = Node::start(db).await;
    let a = node.device("dev-a").await;
    let mut p = Paho::spawn(&paho_spec(
        &node,
        &a,
        "dev-a",
        5,
        json!([
            ["subscribe", "devices/dev-a/commands", 1],
            ["wait_disconnect", 20]
        ]),
    ));
    assert!(
        p.wait(|v| v["ev"] == "suback", Duration::from_secs(10))
            .is_some(),
        "{:?}",
        p.seen
    );
    let committed = tokio::task::block_in_place(|| writer(&node.url, &["revoke", &a.serial]));
    let (arrived, ev) = tokio::task::block_in_place(|| {
        p.wait_timed(|v| v["ev"] == "disconnect", Duration::from_secs(5))
            .expect("session dropped")
    });
    // Wall-clock delay from the other process's commit to the client seeing the cut.
    // The cut can reach the client before the writer read its clock after the commit (LISTEN/
    // NOTIFY is that fast): a negative delay reads as zero.
    let delay = SystemTime::now()
        .duration_since(committed)
        .unwrap_or_default()
        .saturating_sub(arrived.elapsed());
    eprintln!(
        "{db:?}: revocation → disconnect observed by the client after {delay:?} (rc {})",
        ev["rc"]
    );
    assert!(delay < Duration::from_secs(1), "revocation took {delay:?}");
    assert!(!node.plane().revocations().is_empty());

    // The revoked certificate can no longer connect (TLS refuses it).
    let out = tokio::task::block_in_place(|| {
        let mut c = mosquitto("mosquitto_pub", &node, &a, "dev-a", true);
        c.args(["-t", "devices/dev-a/telemetry", "-m", "x"]);
        run(c)
    });
    assert_ne!(
        out.code,
        Some(0),
        "revoked certificate connected: {}",
        out.text
    );
    node.wait_audit(|e| {
        e.event_type == "mqtt.kick"
            && e.subject.id == "dev-a"
            && e.details.get("reason").map(String::as_str) == Some("Revoked")
    })
    .await;
    node.wait_audit(|e| {
        e.event_type == "mqtt.certificate_rejected"
            && e.details.get("claimed_cn").map(String::as_str) == Some("dev-a")
    })
    .await;
    node.stop().await;
}

const BROADCAST: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/fleet/broadcast"},
  {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/fleet/broadcast"}]}"#;

async fn quarantine_and_policy_change_by_another_process_reach_live_sessions(db: Db) {
    let node = Node::start(db).await;
    let b = node.device("dev-b").await;
    let c = node.device("dev-c").await;

    // Both clients pause until the test creates `go`, after the other process's changes were
    // applied (a fixed sleep raced with the start-up of the two Python clients under CI load).
    let go = node.dir.path().join("go");
    let go = go.to_str().unwrap();
    // Quarantine: dev-b keeps its connection but may only publish its status topic.
    let mut pb = Paho::spawn(&paho_spec(
        &node,
        &b,
        "dev-b",
        5,
        json!([
            ["publish", "devices/dev-b/telemetry", "before", 1, false],
            ["wait_file", go, 30],
            ["publish", "devices/dev-b/telemetry", "after", 1, false],
            ["publish", "devices/dev-b/status", "quarantined", 1, false],
            ["disconnect"]
        ]),
    ));
    // Policy change: dev-c is refused a subscription, then granted it once a policy is attached.
    let mut pc = Paho::spawn(&paho_spec(
        &node,
        &c,
        "dev-c",
        5,
        json!([
            ["subscribe", "fleet/broadcast", 1],
            ["wait_file", go, 30],
            ["subscribe", "fleet/broadcast", 1],
            ["disconnect"]
        ]),
    ));
    let committed = tokio::task::block_in_place(|| {
        assert!(
            pb.wait(|v| v["ev"] == "puback", Duration::from_secs(10))
                .is_some(),
            "{:?}",
            pb.seen
        );
        assert!(
            pc.wait(|v| v["ev"] == "suback", Duration::from_secs(10))
                .is_some(),
            "{:?}",
            pc.seen
        );
        writer(&node.url, &["state", "dev-b", "quarantined"])
    });
    let q = applied_within(&node, committed, Duration::from_secs(1)).await;
    let committed = tokio::task::block_in_place(|| {
        writer(&node.url, &["put-policy", "broadcast", BROADCAST]);
        writer(&node.url, &["attach-device", "broadcast", "dev-c"])
    });
    let pol = applied_within(&node, committed, Duration::from_secs(1)).await;
    std::fs::write(go, b"").unwrap();
    eprintln!(
        "{db:?}: quarantine applied {q:?}, policy change applied {pol:?} after the other process committed"
    );

    let (lb, lc) = tokio::task::block_in_place(|| {
        assert!(
            pb.wait(|v| v["ev"] == "done", Duration::from_secs(15))
                .is_some(),
            "{:?}",
            pb.seen
        );
        assert!(
            pc.wait(|v| v["ev"] == "done", Duration::from_secs(15))
                .is_some(),
            "{:?}",
            pc.seen
        );
        (pb.seen.clone(), pc.seen.clone())
    });
    let pubacks: Vec<_> = evs(&lb, "puback").iter().map(|p| p["rc"].clone()).collect();
    assert_eq!(
        pubacks,
        vec![json!(0), json!(135), json!(0)],
        "quarantine: {lb:?}"
    );
    let subacks: Vec<_> = evs(&lc, "suback")
        .iter()
        .map(|s| s["codes"][0].clone())
        .collect();
    assert_eq!(subacks, vec![json!(135), json!(1)], "policy change: {lc:?}");
    node.wait_audit(|e| {
        e.event_type == "mqtt.denied"
            && e.subject.id == "dev-b"
            && e.details.get("topic").map(String::as_str) == Some("devices/dev-b/telemetry")
    })
    .await;
    node.stop().await;
}

/// A change row of a kind this version does not know, as a newer replica writes it (plain SQL
/// into the `changes` table).
async fn insert_future_change(store: &Store, kind: &str, item: &str) {
    let mut pooled = store.acquire().await.unwrap();
    let sql = "INSERT INTO changes (kind, item, changed_at) VALUES ($1, $2, 1700000000)";
    match pooled.connection() {
        Connection::Sqlite(c) => ironroot_store::sqlx::query(sql)
            .bind(kind)
            .bind(item)
            .execute(&mut *c)
            .await
            .map(drop),
        Connection::Postgres(c) => ironroot_store::sqlx::query(sql)
            .bind(kind)
            .bind(item)
            .execute(&mut *c)
            .await
            .map(drop),
    }
    .unwrap();
}

/// Defect 5 of issue 12: an unknown change kind (from a newer replica) between two
/// revocations stopped the plane's follower for good (`UnknownChangeKind` on every retry);
/// now it is skipped and the revocation after it still reaches the live revoked set.
async fn regression_unknown_change_kind_does_not_stop_the_plane(db: Db) {
    let node = Node::start(db).await;
    let a = node.device("dev-fa").await;
    let b = node.device("dev-fb").await;
    let (sa, sb) = (
        Serial::from_hex(&a.serial).unwrap(),
        Serial::from_hex(&b.serial).unwrap(),
    );
    let revocations = node.plane().revocations().clone();
    node.store
        .revoke_certificate(&sa, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    insert_future_change(&node.store, "ota_rollout", "rollout-1").await;
    node.store
        .revoke_certificate(&sb, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    let start = Instant::now();
    while !revocations.is_revoked(&sb) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the revocation after the unknown change was never applied"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(revocations.is_revoked(&sa));
    // The plane is at the end of the feed (past the unknown row), not stuck before it.
    let end = node.store.change_cursor_now().await.unwrap();
    while node.plane().applied_cursor() < end {
        assert!(start.elapsed() < Duration::from_secs(5), "plane stuck");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(node.store.unknown_changes_skipped() >= 1);
    node.stop().await;
}

/// `incident contain` from another process (quarantine + `session_cut`): the live session is
/// closed within a second, and the device's next session is held to the quarantine policy.
async fn containment_by_another_process_cuts_the_session_and_reconnects_quarantined(db: Db) {
    let node = Node::start(db).await;
    let q = node.device("dev-q").await;
    let mut p = Paho::spawn(&paho_spec(
        &node,
        &q,
        "dev-q",
        5,
        json!([
            ["publish", "devices/dev-q/telemetry", "before", 1, false],
            ["wait_disconnect", 20]
        ]),
    ));
    assert!(
        tokio::task::block_in_place(|| p.wait(|v| v["ev"] == "puback", Duration::from_secs(10)))
            .is_some_and(|v| v["rc"] == json!(0)),
        "{:?}",
        p.seen
    );
    let committed = tokio::task::block_in_place(|| writer(&node.url, &["contain", "dev-q"]));
    let (arrived, ev) = tokio::task::block_in_place(|| {
        p.wait_timed(|v| v["ev"] == "disconnect", Duration::from_secs(5))
            .expect("session cut")
    });
    // The cut can reach the client before the writer read its clock after the commit (LISTEN/
    // NOTIFY is that fast): a negative delay reads as zero.
    let delay = SystemTime::now()
        .duration_since(committed)
        .unwrap_or_default()
        .saturating_sub(arrived.elapsed());
    eprintln!(
        "{db:?}: containment → disconnect after {delay:?} (rc {})",
        ev["rc"]
    );
    assert!(delay < Duration::from_secs(1), "containment took {delay:?}");
    // The device reconnects (quarantine keeps its certificate) but may only use its status topic.
    let mut again = Paho::spawn(&paho_spec(
        &node,
        &q,
        "dev-q",
        5,
        json!([
            ["publish", "devices/dev-q/telemetry", "after", 1, false],
            ["publish", "devices/dev-q/status", "quarantined", 1, false],
            ["disconnect"]
        ]),
    ));
    let log = tokio::task::block_in_place(|| {
        assert!(
            again
                .wait(|v| v["ev"] == "done", Duration::from_secs(15))
                .is_some(),
            "{:?}",
            again.seen
        );
        again.seen.clone()
    });
    let pubacks: Vec<_> = evs(&log, "puback")
        .iter()
        .map(|p| p["rc"].clone())
        .collect();
    assert_eq!(pubacks, vec![json!(135), json!(0)], "{log:?}");
    node.wait_audit(|e| {
        e.event_type == "mqtt.kick"
            && e.subject.id == "dev-q"
            && e.details.get("reason").map(String::as_str) == Some("Administrative")
    })
    .await;
    node.stop().await;
}
