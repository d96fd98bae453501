//! Tampering by someone with write access to the database — on every backend, done with real
//! SQL on SQLite and PostgreSQL — is detected and named by `verify_log`.

use ironroot_audit::tile::TileId;
use ironroot_audit::{Checkpoint, NoteSigner, OpenError, Outcome, Tamper, VerifyError, leaf_hash};

use crate::backend::{ORIGIN, TestLog, event, on_every_backend, signer};

on_every_backend!(
    intact_log_verifies,
    altered_entry_is_named,
    altered_entry_with_rewritten_tree_hashes_is_confined_to_its_batch,
    deleted_row_is_named,
    the_first_of_several_tamperings_is_named,
    deleted_and_renumbered_rows_are_named,
    reordered_rows_are_named,
    truncated_log_is_named,
    forged_checkpoint_is_named,
    checkpoint_replaced_with_the_log_key_is_named,
    deleted_latest_checkpoint_leaves_unsigned_entries,
    altered_tree_hashes_are_named_as_such,
    rows_inserted_outside_the_writer_are_named,
    rollback_to_an_older_copy_is_detected_through_the_witness,
    rewritten_history_is_detected_through_an_external_checkpoint,
);

fn tampered(r: Result<u64, VerifyError>) -> Tamper {
    match r {
        Err(VerifyError::Tampered(t)) => t,
        other => panic!("expected tampering to be detected, got {other:?}"),
    }
}

async fn intact_log_verifies(log: &mut TestLog) {
    log.build(600, 50, false).await;
    assert_eq!(log.verify(vec![]).await.unwrap(), 600);
    assert_eq!(log.checkpoint_count().await, 12);
}

async fn altered_entry_is_named(log: &mut TestLog) {
    log.build(600, 50, false).await;
    // Entry 320 records a denial; the attacker turns it into a success.
    log.edit_event(320, |e| {
        assert_eq!(e.outcome, Outcome::Denied);
        e.outcome = Outcome::Success;
    })
    .await;
    let t = tampered(log.verify(vec![]).await);
    assert_eq!(t, Tamper::AlteredEntry { index: 320 });
    assert!(t.to_string().contains("entry 320 was altered"), "{t}");
}

async fn altered_entry_with_rewritten_tree_hashes_is_confined_to_its_batch(log: &mut TestLog) {
    log.build(600, 50, false).await;
    log.edit_event(321, |e| e.actor = "operator:mallory".into())
        .await;
    log.rewrite_tiles().await;
    match tampered(log.verify(vec![]).await) {
        Tamper::AlteredRange { start, end } => {
            assert!(
                start <= 321 && 321 < end && end - start <= 50,
                "{start}..{end}"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn deleted_row_is_named(log: &mut TestLog) {
    log.build(300, 30, false).await;
    log.delete_leaf(77).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::MissingEntry { index: 77 }
    );
}

async fn the_first_of_several_tamperings_is_named(log: &mut TestLog) {
    log.build(300, 30, false).await;
    log.edit_event(95, |e| e.source = "198.51.100.1:1".into())
        .await;
    log.delete_leaf(97).await;
    log.delete_leaf(250).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::AlteredEntry { index: 95 }
    );
}

async fn deleted_and_renumbered_rows_are_named(log: &mut TestLog) {
    log.build(300, 30, false).await;
    log.delete_and_renumber(77).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::MovedEntry {
            index: 77,
            recorded_at: 78
        }
    );
}

async fn reordered_rows_are_named(log: &mut TestLog) {
    log.build(300, 30, false).await;
    log.swap_leaves(100, 140).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::MovedEntry {
            index: 100,
            recorded_at: 140
        }
    );
}

async fn truncated_log_is_named(log: &mut TestLog) {
    log.build(300, 30, false).await;
    log.truncate_from(250).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::Truncated {
            entries: 250,
            checkpoint_size: 300
        }
    );
}

async fn forged_checkpoint_is_named(log: &mut TestLog) {
    log.build(300, 30, false).await;
    // Signed with another key under the log's name.
    let forger = NoteSigner::from_seed(ORIGIN, &[1u8; 32]).unwrap();
    let forged = Checkpoint {
        origin: ORIGIN.into(),
        size: 150,
        root: leaf_hash(b"forged"),
    }
    .sign(&forger)
    .unwrap();
    log.set_checkpoint(150, forged.note).await;
    match tampered(log.verify(vec![]).await) {
        Tamper::BadCheckpoint { size: 150, .. } => {}
        other => panic!("unexpected {other:?}"),
    }
}

async fn checkpoint_replaced_with_the_log_key_is_named(log: &mut TestLog) {
    // Even signed with the log's own key, a checkpoint for another root contradicts the entries.
    log.build(300, 30, false).await;
    let replaced = Checkpoint {
        origin: ORIGIN.into(),
        size: 150,
        root: leaf_hash(b"other"),
    }
    .sign(&signer())
    .unwrap();
    log.set_checkpoint(150, replaced.note).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::AlteredRange {
            start: 120,
            end: 150
        }
    );
}

async fn deleted_latest_checkpoint_leaves_unsigned_entries(log: &mut TestLog) {
    log.build(300, 30, false).await;
    log.delete_checkpoint(300).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::UnsignedEntries { index: 270 }
    );
}

async fn altered_tree_hashes_are_named_as_such(log: &mut TestLog) {
    log.build(600, 50, false).await;
    log.flip_tile_byte(TileId { level: 0, index: 1 }, 40).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::TreeHashes { level: 0, index: 1 }
    );
}

async fn rows_inserted_outside_the_writer_are_named(log: &mut TestLog) {
    let audit = log.build(100, 10, false).await;
    log.insert_leaf(100, event(100).encode().unwrap()).await;
    assert_eq!(
        tampered(log.verify(vec![]).await),
        Tamper::UnsignedEntries { index: 100 }
    );
    // The writer cannot append over the foreign row either; it reports the failure.
    assert!(audit.record(event(101)).await.is_err());
}

async fn rollback_to_an_older_copy_is_detected_through_the_witness(log: &mut TestLog) {
    drop(log.build(200, 20, true).await);
    let backup = log.backup().await;
    let audit = log.open_writer(true).await;
    TestLog::record_range(&audit, 200, 260, 20).await;
    drop(audit);
    log.restore(backup).await;

    // The old copy is internally consistent: without the witness nothing can tell.
    assert_eq!(log.verify(vec![]).await.unwrap(), 200);
    let witness = log.witness().read().await.unwrap().unwrap();
    assert_eq!(
        tampered(log.verify(vec![witness]).await),
        Tamper::Rollback {
            db_size: 200,
            external_size: 260
        }
    );
    // The writer refuses to continue (it would fork the log).
    match log.try_open_writer(true).await {
        Err(OpenError::Rollback {
            db_size: 200,
            witness_size: 260,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

async fn rewritten_history_is_detected_through_an_external_checkpoint(log: &mut TestLog) {
    drop(log.build(200, 20, false).await);
    let kept = log.checkpoint_note(100).await;
    // An attacker holding the log key empties the tables and rebuilds the whole log with one
    // entry changed, re-signing everything: only a checkpoint held outside exposes it.
    log.wipe().await;
    let audit = log.open_writer(false).await;
    for i in 0..200 {
        let e = if i == 42 {
            event(i).detail("note", "rewritten")
        } else {
            event(i)
        };
        audit.record(e).await.unwrap();
    }
    assert_eq!(log.verify(vec![]).await.unwrap(), 200);
    assert_eq!(
        tampered(log.verify(vec![kept]).await),
        Tamper::Fork { size: 100 }
    );
}
