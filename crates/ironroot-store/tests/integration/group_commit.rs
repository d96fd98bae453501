//! Group commit: concurrent jobs share commits, each stays atomic, and each is acknowledged only
//! once durable.

use ironroot_store::{ChangeCursor, DeviceState, NewDevice, StoreError};

use crate::fixtures::{cert, sn};
use crate::harness::{TestDb, both_backends};

both_backends!(
    concurrent_jobs_are_all_committed_and_visible_to_another_store,
    a_failing_job_is_undone_alone,
);

async fn concurrent_jobs_are_all_committed_and_visible_to_another_store(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("gc")).await.unwrap();
    let committer = store.group_committer(64);
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let committer = committer.clone();
            tokio::spawn(async move {
                let mut serials = Vec::new();
                for i in 0..10 {
                    let new = cert(&format!("{t:02x}{i:02x}01"), Some("gc"), 1_800_000_000);
                    let recorded = committer
                        .run(move |tx| {
                            Box::pin(async move { tx.record_issued_certificate(&new).await })
                        })
                        .await
                        .unwrap();
                    serials.push(recorded.serial);
                }
                serials
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 200);
    // Acknowledged means committed: an independent store sees every one.
    let other = db.open_again().await;
    let mut stored: Vec<_> = other
        .certificates_for_device("gc")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    stored.sort();
    acknowledged.sort();
    assert_eq!(stored, acknowledged);
    other.close().await;
}

async fn a_failing_job_is_undone_alone(db: TestDb) {
    let store = &db.store;
    for id in ["ok-dev", "bad-dev"] {
        store.add_device(&NewDevice::new(id)).await.unwrap();
    }
    store
        .record_issued_certificate(&cert("dead", Some("ok-dev"), 1_800_000_000))
        .await
        .unwrap();
    let cursor = store.change_cursor_now().await.unwrap();
    let committer = store.group_committer(16);

    let good = {
        let committer = committer.clone();
        tokio::spawn(async move {
            committer
                .run(|tx| {
                    Box::pin(async move {
                        tx.record_issued_certificate(&cert("beef", Some("ok-dev"), 1_800_000_000))
                            .await?;
                        tx.set_device_state("ok-dev", DeviceState::Provisioned)
                            .await
                    })
                })
                .await
        })
    };
    let bad = {
        let committer = committer.clone();
        tokio::spawn(async move {
            committer
                .run(|tx| {
                    Box::pin(async move {
                        // Changes the device (and queues a change-feed entry), then collides.
                        tx.set_device_state("bad-dev", DeviceState::Provisioned)
                            .await?;
                        tx.record_issued_certificate(&cert("dead", Some("bad-dev"), 1_800_000_000))
                            .await
                    })
                })
                .await
        })
    };
    let bad = bad.await.unwrap();
    assert!(
        matches!(bad, Err(StoreError::DuplicateCertificate { .. })),
        "{bad:?}"
    );
    let good = good.await.unwrap().unwrap();
    assert_eq!(good.state, DeviceState::Provisioned);

    assert_eq!(
        store.device("bad-dev").await.unwrap().state,
        DeviceState::Manufactured
    );
    assert_eq!(
        store
            .certificate(&sn("dead"))
            .await
            .unwrap()
            .device_id
            .as_deref(),
        Some("ok-dev")
    );
    assert_eq!(
        store
            .certificate(&sn("beef"))
            .await
            .unwrap()
            .device_id
            .as_deref(),
        Some("ok-dev")
    );
    let changes = store.changes_since(cursor, 100).await.unwrap();
    let items: Vec<_> = changes.iter().map(|c| c.item.as_str()).collect();
    assert_eq!(items, ["ok-dev"], "the failed job announced nothing");
    assert!(changes.iter().all(|c| c.cursor > ChangeCursor::default()));
}
