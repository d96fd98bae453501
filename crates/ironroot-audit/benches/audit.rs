//! Audit log benchmarks on the in-memory store (the SQL backends add their own I/O on top):
//! raw SHA-256 as the anchor, tree building per entry, inclusion proof generation at 1M and 10M
//! entries from stored tiles, proof verification, full-log verification and the group-commit
//! writer.
//!
//!   cargo bench -p ironroot-audit --bench audit

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ironroot_audit::storage::{AppendBatch, CheckpointRow};
use ironroot_audit::tile::RightEdge;
use ironroot_audit::{
    Audit, AuditConfig, Checkpoint, Event, LogReader, LogStorage, MemoryStorage, NoteSigner,
    Timestamp, VerifyOptions, leaf_hash, verify_log,
};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "bench.example/audit";

fn event(i: u64) -> Event {
    Event::new(ironroot_audit::EventKind::MqttConnect, "device:dev-42")
        .at(Timestamp::new(1_700_000_000 + i as i64, 0).unwrap())
        .subject("device", "dev-42")
        .source("192.0.2.7:51234")
        .detail("client_id", "dev-42")
        .detail("seq", i.to_string())
}

/// A store holding only the tree (tiles) of `n` synthetic entries, built directly.
fn tree_only(n: u64) -> MemoryStorage {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let storage = MemoryStorage::new();
    let mut edge = RightEdge::new();
    let chunk = 1 << 20;
    let mut i = 0;
    while i < n {
        let end = (i + chunk).min(n);
        for j in i..end {
            edge.push_leaf(leaf_hash(&j.to_be_bytes()));
        }
        let batch = AppendBatch {
            first_index: i,
            leaves: Vec::new(),
            tiles: edge.take_dirty(),
            checkpoint: CheckpointRow {
                size: end,
                note: String::new(),
            },
        };
        rt.block_on(storage.append(&batch)).unwrap();
        i = end;
    }
    storage
}

/// A complete signed log of `n` entries committed in batches of `batch`, built directly.
fn signed_log(n: u64, batch: u64, signer: &NoteSigner) -> MemoryStorage {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let storage = MemoryStorage::new();
    let mut edge = RightEdge::new();
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let leaves: Vec<Vec<u8>> = (i..end).map(|j| event(j).encode().unwrap()).collect();
        for l in &leaves {
            edge.push_leaf(leaf_hash(l));
        }
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: end,
            root: edge.root(),
        }
        .sign(signer)
        .unwrap();
        let batch = AppendBatch {
            first_index: i,
            leaves,
            tiles: edge.take_dirty(),
            checkpoint: CheckpointRow {
                size: end,
                note: cp.note,
            },
        };
        rt.block_on(storage.append(&batch)).unwrap();
        i = end;
    }
    storage
}

fn anchors(c: &mut Criterion) {
    let leaf = event(1).encode().unwrap();
    let mut g = c.benchmark_group("audit/hashing");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sha256_raw_leaf_sized", |b| {
        b.iter(|| Sha256::digest(black_box(&leaf)))
    });
    g.bench_function("leaf_hash", |b| b.iter(|| leaf_hash(black_box(&leaf))));
    g.bench_function("tree_append_per_entry", |b| {
        let mut edge = RightEdge::new();
        let h = leaf_hash(&leaf);
        b.iter(|| edge.push_leaf(black_box(h)))
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("audit/inclusion_proof");
    for n in [1_000_000u64, 10_000_000] {
        let storage = Arc::new(tree_only(n));
        let reader = LogReader::new(storage);
        let root = rt.block_on(reader.root(n)).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        g.bench_function(format!("generate_{n}"), |b| {
            b.iter(|| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                rt.block_on(reader.inclusion_proof(x % n, n)).unwrap()
            })
        });
        let index = n / 3;
        let proof = rt.block_on(reader.inclusion_proof(index, n)).unwrap();
        let leaf = leaf_hash(&index.to_be_bytes());
        g.bench_function(format!("verify_{n}"), |b| {
            b.iter(|| proof.verify(black_box(&leaf), &root).unwrap())
        });
    }
    g.finish();
}

fn log(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let signer = || NoteSigner::from_seed(ORIGIN, &[9; 32]).unwrap();
    let n = 100_000u64;
    let storage = MemoryStorage::new();
    rt.block_on(async {
        let (audit, _t) = Audit::open(Arc::new(storage.clone()), signer(), AuditConfig::default())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for t in 0..100 {
            let audit = audit.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n / 100 {
                    audit.record(event(t * 1000 + i)).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let checkpoints = rt
        .block_on(storage.read_checkpoints(0, usize::MAX))
        .unwrap()
        .len();
    eprintln!("verify_log_100k: {n} entries in {checkpoints} checkpoints (group commits)");
    let mut g = c.benchmark_group("audit/log");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("verify_log_100k", |b| {
        b.iter(|| {
            rt.block_on(verify_log(
                Arc::new(storage.clone()),
                signer().verifier(),
                &VerifyOptions::default(),
            ))
            .unwrap()
        })
    });
    let big_batches = signed_log(n, 1000, &signer());
    g.bench_function("verify_log_100k_batches_of_1000", |b| {
        b.iter(|| {
            rt.block_on(verify_log(
                Arc::new(big_batches.clone()),
                signer().verifier(),
                &VerifyOptions::default(),
            ))
            .unwrap()
        })
    });
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("record_10k_concurrent_memory", |b| {
        b.iter_batched(
            || {
                rt.block_on(Audit::open(
                    Arc::new(MemoryStorage::new()),
                    signer(),
                    AuditConfig::default(),
                ))
                .unwrap()
                .0
            },
            |audit| {
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for t in 0..100u64 {
                        let audit = audit.clone();
                        tasks.push(tokio::spawn(async move {
                            for i in 0..100 {
                                audit.record(event(t * 100 + i)).await.unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, anchors, proofs, log);
criterion_main!(benches);
