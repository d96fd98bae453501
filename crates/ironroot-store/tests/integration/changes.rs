//! The change feed: ordered, complete, no rolled-back entries, and live across processes.

use std::time::{Duration, Instant};

use ironroot_store::{
    ChangeCursor, ChangeKind, Connection, DeviceState, NewDevice, RevocationReason, Store,
};

use crate::fixtures::{cert, sn};
use crate::harness::{Db, TestDb, both_backends};

both_backends!(
    feed_lists_committed_changes_in_order,
    rolled_back_changes_never_appear,
    another_replica_sees_a_revocation_within_a_second,
    cursor_now_skips_history_but_not_later_changes,
    late_committing_transaction_is_not_skipped,
    regression_unknown_change_kinds_are_skipped_not_fatal,
);

fn summary(changes: &[ironroot_store::Change]) -> Vec<(ChangeKind, String)> {
    changes.iter().map(|c| (c.kind, c.item.clone())).collect()
}

async fn feed_lists_committed_changes_in_order(db: TestDb) {
    let store = &db.store;
    let start = ChangeCursor::default();
    store.add_device(&NewDevice::new("f1")).await.unwrap();
    store
        .record_issued_certificate(&cert("f1a", Some("f1"), 1_800_000_000))
        .await
        .unwrap();
    store
        .set_device_state("f1", DeviceState::Provisioned)
        .await
        .unwrap();
    store
        .revoke_certificate(&sn("f1a"), RevocationReason::KeyCompromise)
        .await
        .unwrap();
    store.set_device_attribute("f1", "k", "v").await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.record_change(ChangeKind::Policy, "default-device")
        .unwrap();
    tx.commit().await.unwrap();

    let all = store.changes_since(start, 100).await.unwrap();
    assert_eq!(
        summary(&all),
        vec![
            (ChangeKind::Device, "f1".into()),
            (ChangeKind::Device, "f1".into()),
            (ChangeKind::CertificateRevoked, "f1a".into()),
            (ChangeKind::Device, "f1".into()),
            (ChangeKind::Policy, "default-device".into()),
        ],
        "issuing a certificate announces nothing; everything else does"
    );
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor));
    // Paging with the cursor yields the same sequence.
    let first = store.changes_since(start, 2).await.unwrap();
    let rest = store.changes_since(first[1].cursor, 100).await.unwrap();
    assert_eq!([first, rest].concat(), all);
    assert!(
        store
            .changes_since(all[4].cursor, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn rolled_back_changes_never_appear(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("f2")).await.unwrap();
    let cursor = store.change_cursor_now().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.set_device_state("f2", DeviceState::Provisioned)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.record_change(ChangeKind::Group, "g").unwrap();
    drop(tx);
    store
        .set_device_state("f2", DeviceState::Revoked)
        .await
        .unwrap();
    let after = store.changes_since(cursor, 100).await.unwrap();
    assert_eq!(summary(&after), vec![(ChangeKind::Device, "f2".into())]);
}

async fn another_replica_sees_a_revocation_within_a_second(db: TestDb) {
    // The "other replica" (or the offline CLI) is a separate Store with its own pool: on SQLite
    // no in-process wake-up reaches the subscriber, only polling; on PostgreSQL, NOTIFY.
    let writer = db.open_again().await;
    writer.add_device(&NewDevice::new("f3")).await.unwrap();

    let cursor = db.store.change_cursor_now().await.unwrap();
    let mut sub = db.store.subscribe_changes(cursor).await.unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let broker = tokio::spawn(async move {
        loop {
            let change = sub.next().await.unwrap();
            if change.kind == ChangeKind::CertificateRevoked {
                seen_tx.send((change.item, Instant::now())).unwrap();
            }
        }
    });

    let mut delays = Vec::new();
    for round in 0..5 {
        let serial = format!("f3{round}");
        writer
            .record_issued_certificate(&cert(&serial, Some("f3"), 1_800_000_000))
            .await
            .unwrap();
        // Let the subscriber go idle, so the revocation has to wake it.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let started = Instant::now();
        writer
            .revoke_certificate(&sn(&serial), RevocationReason::KeyCompromise)
            .await
            .unwrap();
        let (item, seen_at) = tokio::time::timeout(Duration::from_secs(1), seen_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("revocation {serial} not seen within a second"))
            .unwrap();
        assert_eq!(item, serial);
        delays.push(seen_at - started);
    }
    broker.abort();
    eprintln!(
        "{:?}: revocation → subscriber delays {delays:?}",
        db.backend
    );
    assert!(delays.iter().all(|d| *d < Duration::from_secs(1)));
    writer.close().await;
}

async fn cursor_now_skips_history_but_not_later_changes(db: TestDb) {
    let store = &db.store;
    for i in 0..5 {
        store
            .add_device(&NewDevice::new(format!("h{i}")))
            .await
            .unwrap();
    }
    let cursor = store.change_cursor_now().await.unwrap();
    store
        .set_device_state("h4", DeviceState::Provisioned)
        .await
        .unwrap();
    let after = store.changes_since(cursor, 100).await.unwrap();
    assert_eq!(summary(&after), vec![(ChangeKind::Device, "h4".into())]);

    let mut sub = store.subscribe_changes(cursor).await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(1), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.item, "h4");
    assert_eq!(sub.cursor(), change.cursor);
}

/// Transactions commit in a different order than they started. A reader must never advance past
/// a change that becomes visible later: on PostgreSQL change rows are written at commit under a
/// lock, so the feed follows commit order; on SQLite the second writer waits for the first.
async fn late_committing_transaction_is_not_skipped(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("slow")).await.unwrap();
    store.add_device(&NewDevice::new("fast")).await.unwrap();
    let cursor = store.change_cursor_now().await.unwrap();

    let mut slow = store.begin().await.unwrap();
    slow.set_device_state("slow", DeviceState::Provisioned)
        .await
        .unwrap(); // starts first
    let mut seen = Vec::new();
    if db.backend == Db::Postgres {
        store
            .set_device_state("fast", DeviceState::Provisioned)
            .await
            .unwrap(); // commits first
        let first = store.changes_since(cursor, 100).await.unwrap();
        assert_eq!(summary(&first), vec![(ChangeKind::Device, "fast".into())]);
        slow.commit().await.unwrap();
        let second = store.changes_since(first[0].cursor, 100).await.unwrap();
        assert_eq!(
            summary(&second),
            vec![(ChangeKind::Device, "slow".into())],
            "the late commit must come after the cursor, not behind it"
        );
        seen.extend(first);
        seen.extend(second);
    } else {
        let other = db.store.clone();
        let fast = tokio::spawn(async move {
            other
                .set_device_state("fast", DeviceState::Provisioned)
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!fast.is_finished(), "SQLite has one writer at a time");
        slow.commit().await.unwrap();
        fast.await.unwrap();
        seen = store.changes_since(cursor, 100).await.unwrap();
    }
    assert_eq!(seen.len(), 2);
    assert_eq!(
        store.changes_since(cursor, 100).await.unwrap(),
        seen,
        "one consistent order"
    );
}

/// Writes a change row of a kind this version does not know, as a newer ironroot replica
/// (with OTA or defender changes) would: plain SQL into the `changes` table.
pub async fn insert_future_change(store: &Store, kind: &str, item: &str) {
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

/// Defect 5 of issue 12: a change kind from a newer replica used to be a hard error
/// (`UnknownChangeKind`) on every read, so an older follower stopped for good. Now it is
/// skipped, counted, and the known changes around it are delivered in order.
async fn regression_unknown_change_kinds_are_skipped_not_fatal(db: TestDb) {
    let store = &db.store;
    let start = store.change_cursor_now().await.unwrap();
    let mut sub = store.subscribe_changes(start).await.unwrap();
    store.add_device(&NewDevice::new("fk-1")).await.unwrap();
    insert_future_change(store, "ota_rollout", "rollout-7").await;
    insert_future_change(store, "ota_rollout", "rollout-8").await;
    insert_future_change(store, "defender_alert", "fk-1").await;
    store.add_device(&NewDevice::new("fk-2")).await.unwrap();

    let wait = Duration::from_secs(2);
    let first = tokio::time::timeout(wait, sub.next())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(wait, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        summary(&[first.clone(), second.clone()]),
        vec![
            (ChangeKind::Device, "fk-1".into()),
            (ChangeKind::Device, "fk-2".into())
        ]
    );
    assert_eq!(sub.unknown_skipped(), 3);
    assert!(store.unknown_changes_skipped() >= 3);
    assert_eq!(sub.cursor(), second.cursor);
    // A one-shot read leaves the unknown rows out too.
    assert_eq!(
        summary(&store.changes_since(start, 100).await.unwrap()),
        summary(&[first, second.clone()])
    );

    // Unknown rows at the end of the feed: the follower moves past them and still sees the
    // next known change.
    insert_future_change(store, "ota_rollout", "rollout-9").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "an unknown change is not delivered"
    );
    assert!(sub.cursor() > second.cursor, "the cursor moved past it");
    store.add_device(&NewDevice::new("fk-3")).await.unwrap();
    let third = tokio::time::timeout(wait, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.item, "fk-3");
    assert_eq!(sub.unknown_skipped(), 4);
}
