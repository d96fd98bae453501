//! Writer + verification tests on the in-memory storage: group commit, proofs from stored
//! tiles, and every kind of tampering named by `verify_log`.

use std::sync::Arc;

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::event::{Event, Outcome};
use crate::hash::leaf_hash;
use crate::note::NoteSigner;
use crate::reader::LogReader;
use crate::storage::{LogStorage, MemoryStorage};
use crate::tile::RightEdge;
use crate::time::Timestamp;
use crate::verify::{Tamper, VerifyError, VerifyOptions, verify_log};
use crate::witness::WitnessFile;
use crate::writer::{Audit, AuditConfig, OpenError, RecordError};

const ORIGIN: &str = "ironroot.test/audit";

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[42u8; 32]).unwrap()
}

fn event(i: u64) -> Event {
    Event::new("mqtt.connect", format!("device:dev-{}", i % 7))
        .at(Timestamp::new(1_700_000_000 + i as i64, (i % 1000) as u32).unwrap())
        .subject("device", format!("dev-{}", i % 7))
        .source(format!("192.0.2.{}:8883", i % 250))
        .outcome(if i.is_multiple_of(5) {
            Outcome::Denied
        } else {
            Outcome::Success
        })
        .detail("seq", i.to_string())
}

/// Writes `n` events in batches of `batch` (sequential batches of concurrent records).
async fn build(n: u64, batch: u64, witness: Option<WitnessFile>) -> (MemoryStorage, Audit) {
    let storage = MemoryStorage::new();
    let config = AuditConfig {
        witness,
        ..AuditConfig::default()
    };
    let (audit, _task) = Audit::open(Arc::new(storage.clone()), signer(), config)
        .await
        .unwrap();
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        // Spawned on the current-thread test runtime, all records of a batch are queued before
        // the writer runs again, so each batch becomes one commit.
        let handles: Vec<_> = (i..end)
            .map(|j| {
                let audit = audit.clone();
                tokio::spawn(async move { audit.record(event(j)).await })
            })
            .collect();
        for h in handles {
            h.await.unwrap().unwrap();
        }
        i = end;
    }
    (storage, audit)
}

async fn verify(storage: &MemoryStorage, external: Vec<String>) -> Result<u64, VerifyError> {
    let opts = VerifyOptions {
        external_checkpoints: external,
        page: 100,
    };
    verify_log(Arc::new(storage.clone()), signer().verifier(), &opts)
        .await
        .map(|v| v.size)
}

fn tampered(r: Result<u64, VerifyError>) -> Tamper {
    match r {
        Err(VerifyError::Tampered(t)) => t,
        other => panic!("expected tampering to be detected, got {other:?}"),
    }
}

/// Recomputes every tile from the (tampered) leaves, as an attacker covering tracks would.
fn rewrite_tiles(storage: &MemoryStorage) {
    storage.with_inner(|g| {
        let mut edge = RightEdge::new();
        for leaf in g.leaves.values() {
            edge.push_leaf(leaf_hash(leaf));
        }
        g.tiles.clear();
        for t in edge.take_dirty() {
            g.tiles.insert(t.id, t.as_bytes().to_vec());
        }
    });
}

#[tokio::test]
async fn concurrent_records_are_group_committed_and_verify() {
    let storage = MemoryStorage::new();
    let (audit, _task) = Audit::open(Arc::new(storage.clone()), signer(), AuditConfig::default())
        .await
        .unwrap();
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
    assert_eq!(verify(&storage, vec![]).await.unwrap(), 1000);
    let checkpoints = storage.with_inner(|g| g.checkpoints.len());
    // 20 concurrent writers: batches of up to 20, so far fewer commits than records.
    assert!(
        (1..=100).contains(&checkpoints),
        "{checkpoints} commits for 1000 records"
    );
}

#[tokio::test]
async fn receipts_prove_inclusion_and_checkpoints_prove_consistency() {
    let (storage, audit) = build(700, 33, None).await;
    let storage = Arc::new(storage);
    let reader = LogReader::new(storage.clone());
    let latest = storage.latest_checkpoint().await.unwrap().unwrap();
    let latest = SignedCheckpoint::verify_note(&latest.note, audit.verifier()).unwrap();
    for index in [0u64, 1, 255, 256, 257, 511, 699] {
        let leaf = storage.read_leaves(index, index + 1, 1).await.unwrap();
        let proof = reader.inclusion_proof(index, 700).await.unwrap();
        proof
            .verify(&leaf_hash(&leaf[0].data), &latest.checkpoint.root)
            .unwrap();
    }
    // A bundle for a third party verifies with only the public key.
    let row = storage.latest_checkpoint().await.unwrap().unwrap();
    let bundle = reader.proof_bundle(123, &row).await.unwrap();
    let text = bundle.to_text();
    let v = crate::bundle::ProofBundle::parse(&text)
        .unwrap()
        .verify(&crate::note::NoteVerifier::parse(&audit.verifier().to_string()).unwrap())
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

#[tokio::test]
async fn altered_leaf_is_named() {
    let (storage, _) = build(600, 50, None).await;
    storage.with_inner(|g| {
        let leaf = g.leaves.get_mut(&321).unwrap();
        let last = leaf.len() - 1;
        leaf[last] ^= 1;
    });
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::AlteredEntry { index: 321 }
    );
}

#[tokio::test]
async fn altered_leaf_with_rewritten_tree_hashes_is_confined_to_its_batch() {
    let (storage, _) = build(600, 50, None).await;
    storage.with_inner(|g| g.leaves.get_mut(&321).unwrap()[20] ^= 1);
    rewrite_tiles(&storage);
    match tampered(verify(&storage, vec![]).await) {
        Tamper::AlteredRange { start, end } => {
            assert!(start <= 321 && 321 < end && end - start <= 50)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn deleted_row_is_named() {
    let (storage, _) = build(300, 30, None).await;
    storage.with_inner(|g| g.leaves.remove(&77));
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::MissingEntry { index: 77 }
    );
}

#[tokio::test]
async fn the_first_of_several_tamperings_is_named() {
    let (storage, _) = build(300, 30, None).await;
    storage.with_inner(|g| {
        g.leaves.get_mut(&95).unwrap()[30] ^= 1;
        g.leaves.remove(&97);
    });
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::AlteredEntry { index: 95 }
    );
}

#[tokio::test]
async fn deleted_and_renumbered_rows_are_named() {
    let (storage, _) = build(300, 30, None).await;
    storage.with_inner(|g| {
        let rest: Vec<_> = g.leaves.range(78..).map(|(_, v)| v.clone()).collect();
        g.leaves.retain(|i, _| *i < 77);
        for (k, v) in rest.into_iter().enumerate() {
            g.leaves.insert(77 + k as u64, v);
        }
    });
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::MovedEntry {
            index: 77,
            recorded_at: 78
        }
    );
}

#[tokio::test]
async fn reordered_rows_are_named() {
    let (storage, _) = build(300, 30, None).await;
    storage.with_inner(|g| {
        let a = g.leaves[&100].clone();
        let b = g.leaves[&140].clone();
        g.leaves.insert(100, b);
        g.leaves.insert(140, a);
    });
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::MovedEntry {
            index: 100,
            recorded_at: 140
        }
    );
}

#[tokio::test]
async fn truncated_log_is_named() {
    let (storage, _) = build(300, 30, None).await;
    storage.with_inner(|g| g.leaves.retain(|i, _| *i < 250));
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::Truncated {
            entries: 250,
            checkpoint_size: 300
        }
    );
}

#[tokio::test]
async fn forged_checkpoint_is_named() {
    let (storage, _) = build(300, 30, None).await;
    // Signed with another key under the log's name.
    let forger = NoteSigner::from_seed(ORIGIN, &[1u8; 32]).unwrap();
    let forged = Checkpoint {
        origin: ORIGIN.into(),
        size: 150,
        root: leaf_hash(b"forged"),
    }
    .sign(&forger)
    .unwrap();
    storage.with_inner(|g| g.checkpoints.insert(150, forged.note));
    match tampered(verify(&storage, vec![]).await) {
        Tamper::BadCheckpoint { size: 150, .. } => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn checkpoint_replaced_with_the_log_key_is_named() {
    // Even with the log's own key, a checkpoint for another root does not match the entries.
    let (storage, _) = build(300, 30, None).await;
    let replaced = Checkpoint {
        origin: ORIGIN.into(),
        size: 150,
        root: leaf_hash(b"other"),
    }
    .sign(&signer())
    .unwrap();
    storage.with_inner(|g| g.checkpoints.insert(150, replaced.note));
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::AlteredRange {
            start: 120,
            end: 150
        }
    );
}

#[tokio::test]
async fn altered_tree_hashes_are_named_as_such() {
    let (storage, _) = build(600, 50, None).await;
    storage.with_inner(|g| {
        g.tiles
            .get_mut(&crate::tile::TileId { level: 0, index: 1 })
            .unwrap()[40] ^= 1
    });
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::TreeHashes { level: 0, index: 1 }
    );
}

#[tokio::test]
async fn unsigned_rows_are_named() {
    let (storage, _) = build(100, 10, None).await;
    storage.with_inner(|g| g.leaves.insert(100, event(100).encode().unwrap()));
    assert_eq!(
        tampered(verify(&storage, vec![]).await),
        Tamper::UnsignedEntries { index: 100 }
    );
}

#[tokio::test]
async fn rollback_to_an_older_copy_is_detected_through_the_witness() {
    let dir = std::env::temp_dir().join(format!("ironroot-audit-rollback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let witness = WitnessFile::new(dir.join("witness"));
    let (storage, audit) = build(200, 20, Some(witness.clone())).await;
    let backup = storage.with_inner(|g| g.clone());
    for i in 200..260 {
        audit.record(event(i)).await.unwrap();
    }
    drop(audit);
    storage.with_inner(|g| *g = backup);

    // The old copy is internally consistent: without the witness nothing can tell.
    assert_eq!(verify(&storage, vec![]).await.unwrap(), 200);
    let note = witness.read().await.unwrap().unwrap();
    assert_eq!(
        tampered(verify(&storage, vec![note]).await),
        Tamper::Rollback {
            db_size: 200,
            external_size: 260
        }
    );
    // The writer refuses to continue (it would fork the log).
    let config = AuditConfig {
        witness: Some(witness.clone()),
        ..AuditConfig::default()
    };
    match Audit::open(Arc::new(storage.clone()), signer(), config).await {
        Err(OpenError::Rollback {
            db_size: 200,
            witness_size: 260,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn rewritten_history_is_detected_through_an_external_checkpoint() {
    let (storage, _) = build(200, 20, None).await;
    let kept = storage.with_inner(|g| g.checkpoints[&100].clone());
    // Rebuild the whole log with one entry changed and re-sign everything with the log key
    // (an attacker holding the key): only a checkpoint held outside exposes it.
    let forged = MemoryStorage::new();
    let (audit, _t) = Audit::open(Arc::new(forged.clone()), signer(), AuditConfig::default())
        .await
        .unwrap();
    for i in 0..200 {
        let e = if i == 42 {
            event(i).outcome(Outcome::Success).detail("x", "y")
        } else {
            event(i)
        };
        audit.record(e).await.unwrap();
    }
    assert_eq!(verify(&forged, vec![]).await.unwrap(), 200);
    assert_eq!(
        tampered(verify(&forged, vec![kept]).await),
        Tamper::Fork { size: 100 }
    );
}

#[tokio::test]
async fn failed_commit_is_reported_and_the_writer_recovers() {
    let (storage, audit) = build(10, 5, None).await;
    storage.with_inner(|g| g.fail_next_append = true);
    match audit.record(event(10)).await {
        Err(RecordError::Storage(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
    let r = audit.record(event(11)).await.unwrap();
    assert_eq!(r.index, 10);
    assert_eq!(verify(&storage, vec![]).await.unwrap(), 11);
}

#[tokio::test]
async fn missing_witness_blocks_opening_a_non_empty_log() {
    let (storage, _) = build(10, 5, None).await;
    let path =
        std::env::temp_dir().join(format!("ironroot-audit-nowitness-{}", std::process::id()));
    let config = AuditConfig {
        witness: Some(WitnessFile::new(&path)),
        ..AuditConfig::default()
    };
    assert!(matches!(
        Audit::open(Arc::new(storage.clone()), signer(), config.clone()).await,
        Err(OpenError::WitnessMissing(_))
    ));
    let config = AuditConfig {
        danger_recreate_missing_witness: true,
        ..config
    };
    let (audit, _t) = Audit::open(Arc::new(storage), signer(), config)
        .await
        .unwrap();
    audit.record(event(10)).await.unwrap();
    assert!(path.exists());
    std::fs::remove_file(&path).unwrap();
}
