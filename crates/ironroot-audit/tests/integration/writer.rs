//! The writer on every backend: group commit, receipts and proofs, all-or-nothing batches,
//! several writers on one database, the witness.

use std::sync::Arc;

use ironroot_audit::{
    Audit, AuditConfig, LogReader, LogStorage, NoteVerifier, OpenError, ProofBundle, RecordError,
    SignedCheckpoint, leaf_hash,
};

use crate::backend::{TestLog, event, on_every_backend, signer};

on_every_backend!(
    concurrent_records_are_group_committed_and_verify,
    receipts_prove_inclusion_and_checkpoints_prove_consistency,
    a_failed_commit_writes_nothing_and_the_writer_recovers,
    two_writers_on_one_database_take_turns,
    opening_beside_a_busy_writer_is_never_taken_for_a_rollback,
    missing_witness_blocks_opening_a_non_empty_log,
    reopening_continues_the_same_tree,
);

async fn concurrent_records_are_group_committed_and_verify(log: &mut TestLog) {
    let audit = log.open_writer(true).await;
    let mut tasks = Vec::new();
    for t in 0..20u64 {
        let audit = audit.clone();
        tasks.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..50 {
                receipts.push(audit.record(event(t * 50 + i)).await.unwrap());
            }
            receipts
        }));
    }
    let mut indexes = Vec::new();
    for t in tasks {
        indexes.extend(t.await.unwrap().into_iter().map(|r| r.index));
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..1000).collect::<Vec<_>>());
    assert_eq!(log.verify(vec![]).await.unwrap(), 1000);
    // 20 concurrent writers: batches of up to 20, so far fewer commits than records.
    let commits = log.checkpoint_count().await;
    assert!(
        (1..=100).contains(&commits),
        "{commits} commits for 1000 records"
    );
    // The witness holds the latest checkpoint.
    let witness = log.witness().read().await.unwrap().unwrap();
    let latest = log.storage.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(witness, latest.note);
}

async fn receipts_prove_inclusion_and_checkpoints_prove_consistency(log: &mut TestLog) {
    let audit = log.build(700, 33, false).await;
    let storage = log.storage();
    let reader = LogReader::new(storage.clone());
    let latest = storage.latest_checkpoint().await.unwrap().unwrap();
    let latest = SignedCheckpoint::verify_note(&latest.note, audit.verifier()).unwrap();
    for index in [0u64, 1, 255, 256, 257, 511, 699] {
        let leaf = log.leaf(index).await;
        let proof = reader.inclusion_proof(index, 700).await.unwrap();
        proof
            .verify(&leaf_hash(&leaf), &latest.checkpoint.root)
            .unwrap();
    }
    // A bundle for a third party verifies with only the public key string.
    let row = storage.latest_checkpoint().await.unwrap().unwrap();
    let bundle = reader.proof_bundle(123, &row).await.unwrap();
    let key = NoteVerifier::parse(&audit.verifier().to_string()).unwrap();
    let v = ProofBundle::parse(&bundle.to_text())
        .unwrap()
        .verify(&key)
        .unwrap();
    assert_eq!((v.index, v.event.details["seq"].as_str()), (123, "123"));
    // Any two checkpoints, not just successive ones.
    let rows = storage.read_checkpoints(0, 1000).await.unwrap();
    assert_eq!(rows.len(), 700usize.div_ceil(33));
    for (a, b) in [(0, rows.len() - 1), (3, 9), (5, 6)] {
        let c1 = SignedCheckpoint::verify_note(&rows[a].note, audit.verifier()).unwrap();
        let c2 = SignedCheckpoint::verify_note(&rows[b].note, audit.verifier()).unwrap();
        let p = reader
            .consistency_proof(c1.checkpoint.size, c2.checkpoint.size)
            .await
            .unwrap();
        p.verify(&c1.checkpoint.root, &c2.checkpoint.root).unwrap();
    }
}

async fn a_failed_commit_writes_nothing_and_the_writer_recovers(log: &mut TestLog) {
    let audit = log.build(10, 5, true).await;
    // The failure strikes at the checkpoint insert, after leaves and tiles were written in
    // the same transaction: all of it must be rolled back.
    log.fail_appends(true).await;
    match audit.record(event(10)).await {
        Err(RecordError::Storage(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        log.storage.read_leaves(10, 11, 1).await.unwrap().is_empty(),
        "a failed batch left its entry behind"
    );
    assert_eq!(log.verify(vec![]).await.unwrap(), 10);
    log.fail_appends(false).await;
    let r = audit.record(event(11)).await.unwrap();
    assert_eq!(r.index, 10);
    let witness = log.witness().read().await.unwrap().unwrap();
    assert_eq!(log.verify(vec![witness]).await.unwrap(), 11);
}

async fn two_writers_on_one_database_take_turns(log: &mut TestLog) {
    // Two server processes sharing one database: each appends on top of the other's entries
    // (a stale writer is refused, re-reads the stored tree and retries).
    let a = log.open_writer(false).await;
    let b = log.open_writer(false).await;
    let mut indexes = Vec::new();
    for i in 0..30 {
        let writer = if i % 3 == 0 { &b } else { &a };
        indexes.push(writer.record(event(i)).await.unwrap().index);
    }
    assert_eq!(indexes, (0..30).collect::<Vec<_>>());
    // Concurrently, too.
    let (ra, rb) = tokio::join!(
        async {
            let mut v = Vec::new();
            for i in 30..60 {
                v.push(a.record(event(i)).await.unwrap().index);
            }
            v
        },
        async {
            let mut v = Vec::new();
            for i in 60..90 {
                v.push(b.record(event(i)).await.unwrap().index);
            }
            v
        }
    );
    let mut all: Vec<u64> = ra.into_iter().chain(rb).collect();
    all.sort_unstable();
    assert_eq!(all, (30..90).collect::<Vec<_>>());
    assert_eq!(log.verify(vec![]).await.unwrap(), 90);
}

async fn opening_beside_a_busy_writer_is_never_taken_for_a_rollback(log: &mut TestLog) {
    // A server appends with its witness while a CLI command opens the same log (CI saw
    // `ironroot policy create` refused with "the database was rolled back" once, when the
    // witness was read after the database and an append landed in between).
    let busy = log.open_writer(true).await;
    let appending = async {
        let mut last = 0;
        for i in 0..200 {
            last = busy.record(event(i)).await.unwrap().index;
        }
        last
    };
    let opening = async {
        for i in 0..40u64 {
            let cli = log.try_open_writer(true).await.unwrap_or_else(|e| {
                panic!("open #{i} beside a busy writer failed: {e}");
            });
            cli.record(event(1000 + i)).await.unwrap();
        }
    };
    let (last, ()) = tokio::join!(appending, opening);
    assert!(last >= 199);
    let witness = log.witness().read().await.unwrap().unwrap();
    // The witness holds the final tree, never an older one left by a slower writer.
    assert_eq!(log.verify(vec![witness.clone()]).await.unwrap(), 240);
    assert!(witness.lines().nth(1) == Some("240"), "{witness}");
}

async fn missing_witness_blocks_opening_a_non_empty_log(log: &mut TestLog) {
    drop(log.build(10, 5, false).await);
    assert!(matches!(
        log.try_open_writer(true).await,
        Err(OpenError::WitnessMissing(_))
    ));
    let config = AuditConfig {
        witness: Some(log.witness()),
        danger_recreate_missing_witness: true,
        ..AuditConfig::default()
    };
    let (audit, _task) = Audit::open(log.storage(), signer(), config).await.unwrap();
    audit.record(event(10)).await.unwrap();
    let note = log.witness().read().await.unwrap().unwrap();
    assert_eq!(log.verify(vec![note]).await.unwrap(), 11);
}

async fn reopening_continues_the_same_tree(log: &mut TestLog) {
    drop(log.build(300, 70, true).await);
    let audit = log.open_writer(true).await;
    let r = audit.record(event(300)).await.unwrap();
    assert_eq!(r.index, 300);
    let storage: Arc<_> = log.storage();
    let reader = LogReader::new(storage);
    let proof = reader.consistency_proof(280, 301).await.unwrap();
    let first = SignedCheckpoint::verify_note(&log.checkpoint_note(280).await, signer().verifier())
        .unwrap();
    proof
        .verify(&first.checkpoint.root, &r.checkpoint.root)
        .unwrap();
    assert_eq!(log.verify(vec![]).await.unwrap(), 301);
}
