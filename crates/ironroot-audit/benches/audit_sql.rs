//! The audit log on its real stores: durable appends per second with group commit on SQLite and
//! PostgreSQL (through `Audit::open_store`, witness included), inclusion proofs served from a
//! SQLite store of 1M and 10M entries, and full verification speed — beside anchors in the same
//! run: raw SHA-256 of a leaf, and a raw multi-row INSERT of the same leaves in one transaction.
//!
//! Run: `IRONROOT_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo bench -p ironroot-audit --bench audit_sql`
//!
//! The 1M and 10M-entry SQLite databases are built once (bulk path: 65,536 entries per
//! transaction, one signed checkpoint each) in `$IRONROOT_AUDIT_BENCH_DIR`, by default
//! `$CARGO_TARGET_DIR/audit-bench` (outside the repository), and reused by later runs.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ironroot_audit::storage::{AppendBatch, CheckpointRow};
use ironroot_audit::tile::RightEdge;
use ironroot_audit::{
    Audit, Checkpoint, Event, LogReader, LogStorage, NoteSigner, SqlStorage, Timestamp,
    VerifyOptions, leaf_hash, verify_log,
};
use ironroot_store::sqlx::{self, AssertSqlSafe, Connection as _, Executor as _};
use ironroot_store::{Store, on_backend};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "bench.example/audit";
/// Entries per transaction when building the proof databases.
const BULK_BATCH: u64 = 65_536;
/// Concurrent `record()` callers in the append benchmark.
const CALLERS: u64 = 8192;

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[9; 32]).unwrap()
}

/// A typical `mqtt.connected` event (121 bytes encoded).
fn event(i: u64) -> Event {
    Event::new(ironroot_audit::EventKind::MqttConnect, "device:dev-42")
        .at(Timestamp::new(1_700_000_000 + i as i64, 0).unwrap())
        .subject("device", "dev-42")
        .source("192.0.2.7:51234")
        .detail("client_id", "dev-42")
        .detail("seq", i.to_string())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn bench_dir() -> PathBuf {
    match std::env::var_os("IRONROOT_AUDIT_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("CARGO_TARGET_DIR")
                .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into()),
        )
        .join("audit-bench"),
    }
}

fn pg_admin_url() -> String {
    std::env::var("IRONROOT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh PostgreSQL database for one run; returns its URL.
async fn fresh_pg(name: &str) -> String {
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required: {e}"));
    conn.execute(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await
    .unwrap();
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let base = admin.rsplit_once('/').expect("URL with a path").0;
    format!("{base}/{name}")
}

/// Builds (or finds) a SQLite log of `n` entries through the bulk path; returns its store.
async fn proof_db(n: u64) -> Store {
    let dir = bench_dir().join(format!("sqlite-{n}"));
    let done = dir.join("complete");
    if done.exists() {
        return Store::open_data_dir(&dir).await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_data_dir(&dir).await.unwrap();
    let started = Instant::now();
    bulk_append(&SqlStorage::new(store.clone()), n).await;
    eprintln!(
        "built {n}-entry SQLite log in {:.1} s at {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    std::fs::write(done, n.to_string()).unwrap();
    store
}

/// The bulk-append path: encode, hash and extend the tree here, then one transaction (leaves,
/// tiles, signed checkpoint) per `BULK_BATCH` entries, the next batch prepared meanwhile.
async fn bulk_append(storage: &SqlStorage, n: u64) {
    let signer = signer();
    let mut edge = RightEdge::new();
    let mut i = 0;
    while i < n {
        let end = (i + BULK_BATCH).min(n);
        let leaves: Vec<Vec<u8>> = (i..end).map(|j| event(j).encode().unwrap()).collect();
        for l in &leaves {
            edge.push_leaf(leaf_hash(l));
        }
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: end,
            root: edge.root(),
        }
        .sign(&signer)
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
        storage.append(&batch).await.unwrap();
        i = end;
    }
}

fn anchors(c: &mut Criterion) {
    let leaf = event(1).encode().unwrap();
    let mut g = c.benchmark_group("audit_sql/anchor");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sha256_raw_leaf_sized", |b| {
        b.iter(|| Sha256::digest(black_box(&leaf)))
    });
    g.finish();
}

/// `iters` records spread over `CALLERS` concurrent tasks; the wall time.
async fn record_concurrently(audit: &Audit, iters: u64) -> Duration {
    let per = iters.div_ceil(CALLERS);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CALLERS as usize);
    for t in 0..CALLERS {
        let audit = audit.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..per {
                audit.record(event(t * per + k)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// Raw anchor: the same leaves inserted in one transaction of multi-row INSERTs (SQLite) or
/// one UNNEST (PostgreSQL) into a bare table, then COMMIT; no hashing, no signing.
async fn raw_insert(store: &Store, rows: &[Vec<u8>], first: i64) {
    let mut tx = store.begin().await.unwrap();
    match tx.connection() {
        ironroot_store::Connection::Sqlite(c) => {
            for (k, chunk) in rows.chunks(256).enumerate() {
                let mut sql = String::from("INSERT INTO bench_anchor (idx, data) VALUES ");
                for j in 0..chunk.len() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("(${}, ${})", 2 * j + 1, 2 * j + 2));
                }
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for (j, r) in chunk.iter().enumerate() {
                    q = q.bind(first + (k * 256 + j) as i64).bind(r.as_slice());
                }
                q.execute(&mut *c).await.unwrap();
            }
        }
        ironroot_store::Connection::Postgres(c) => {
            let idx: Vec<i64> = (0..rows.len() as i64).map(|k| first + k).collect();
            sqlx::query(
                "INSERT INTO bench_anchor (idx, data) SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[])",
            )
            .bind(&idx)
            .bind(rows)
            .execute(&mut *c)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

fn appends(c: &mut Criterion) {
    let rt = runtime();
    let tmp = tempfile::tempdir_in(bench_dir_created()).unwrap();
    let mut g = c.benchmark_group("audit_sql/append_durable");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let per_iter = 4 * CALLERS;
    g.throughput(Throughput::Elements(per_iter));
    for backend in ["sqlite", "postgres"] {
        let data_dir = tmp.path().join(backend);
        let store = rt.block_on(async {
            match backend {
                "sqlite" => Store::open_data_dir(&data_dir).await.unwrap(),
                _ => Store::open(&fresh_pg("ironroot_audit_bench").await)
                    .await
                    .unwrap(),
            }
        });
        let audit = rt.block_on(Audit::open_store(&store, &data_dir)).unwrap();
        g.bench_function(format!("{backend}_record_{CALLERS}_callers"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += record_concurrently(&audit, per_iter).await;
                    }
                    total
                })
            })
        });
        let storage = SqlStorage::new(store.clone());
        if let Some(latest) = rt.block_on(storage.latest_checkpoint()).unwrap() {
            let commits = rt
                .block_on(storage.read_checkpoints(0, usize::MAX))
                .unwrap()
                .len();
            eprintln!(
                "{backend}: {} entries appended in {commits} group commits (mean batch {:.0})",
                latest.size,
                latest.size as f64 / commits as f64
            );
        }
        // Anchor: the same bytes, one transaction per 8192 rows, into a bare table.
        rt.block_on(async {
            let mut tx = store.begin().await.unwrap();
            on_backend!(tx.connection(), c => {
                sqlx::query(if backend == "sqlite" {
                    "CREATE TABLE bench_anchor (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)"
                } else {
                    "CREATE TABLE bench_anchor (idx BIGINT PRIMARY KEY, data BYTEA NOT NULL)"
                })
                .execute(&mut *c)
                .await
                .map(|_| ())
            })
            .unwrap();
            tx.commit().await.unwrap();
        });
        let rows: Vec<Vec<u8>> = (0..8192).map(|i| event(i).encode().unwrap()).collect();
        let mut next = 0i64;
        g.throughput(Throughput::Elements(8192));
        g.bench_function(
            format!("{backend}_anchor_raw_insert_8192_per_commit"),
            |b| {
                b.iter(|| {
                    rt.block_on(raw_insert(&store, &rows, next));
                    next += 8192;
                })
            },
        );
        g.throughput(Throughput::Elements(per_iter));
        drop(audit);
        rt.block_on(store.close());
    }
    g.finish();
    rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
        admin
            .execute("DROP DATABASE IF EXISTS ironroot_audit_bench WITH (FORCE)")
            .await
            .unwrap();
    });
}

fn bench_dir_created() -> PathBuf {
    let d = bench_dir();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Reads a file once so the benchmark measures the database, not the disk (the server's
/// working set is in the page cache; 23 GB of RAM hold the 2 GB of the 10M-entry log).
fn warm_page_cache(dir: &std::path::Path) {
    use std::io::Read as _;
    let mut f = std::fs::File::open(dir.join(ironroot_store::DATABASE_FILE)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).unwrap() > 0 {}
}

fn proofs(c: &mut Criterion) {
    // One thread, as one request handler runs: every task the pool spawns (returning a
    // connection) runs beside it instead of waking a second thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("audit_sql/inclusion_proof_sqlite");
    for n in [1_000_000u64, 10_000_000] {
        let store = rt.block_on(proof_db(n));
        warm_page_cache(&bench_dir().join(format!("sqlite-{n}")));
        let storage = Arc::new(SqlStorage::new(store.clone()));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) % n
        };
        if n == 1_000_000 {
            // Anchor: the cost of one query through the store's pool (acquire, run, release).
            g.bench_function("anchor_select_1_pooled", |b| {
                b.iter(|| {
                    rt.block_on(async {
                        let mut conn = store.acquire().await.unwrap();
                        let v: i64 = on_backend!(conn.connection(), c => {
                            sqlx::query_scalar("SELECT 1").fetch_one(&mut *c).await
                        })
                        .unwrap();
                        v
                    })
                })
            });
        }
        // A fresh reader per proof: no tile cache, every tile read from SQLite.
        g.bench_function(format!("generate_{n}_uncached"), |b| {
            b.iter(|| {
                let reader = LogReader::new(storage.clone());
                rt.block_on(reader.inclusion_proof(next(), n)).unwrap()
            })
        });
        // A long-lived reader (a server): upper and right-edge tiles stay cached, so each
        // proof reads the leaf's tile only.
        let reader = LogReader::new(storage.clone());
        g.bench_function(format!("generate_{n}_server_reader"), |b| {
            b.iter(|| rt.block_on(reader.inclusion_proof(next(), n)).unwrap())
        });
        // Sanity: a proof from the database verifies against the signed root.
        let latest = rt.block_on(storage.latest_checkpoint()).unwrap().unwrap();
        let cp = ironroot_audit::SignedCheckpoint::verify_note(&latest.note, signer().verifier())
            .unwrap();
        let i = next();
        let leaf = rt.block_on(storage.read_leaves(i, i + 1, 1)).unwrap();
        rt.block_on(reader.inclusion_proof(i, n))
            .unwrap()
            .verify(&leaf_hash(&leaf[0].data), &cp.checkpoint.root)
            .unwrap();
        rt.block_on(store.close());
    }
    g.finish();
}

fn verification(c: &mut Criterion) {
    let rt = runtime();
    let n = 1_000_000u64;
    let store = rt.block_on(proof_db(n));
    let storage = Arc::new(SqlStorage::new(store.clone()));
    let mut g = c.benchmark_group("audit_sql/verify_log_sqlite");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("full_1000000_batches_of_65536", |b| {
        b.iter(|| {
            let v = rt
                .block_on(verify_log(
                    storage.clone(),
                    signer().verifier(),
                    &VerifyOptions::default(),
                ))
                .unwrap();
            assert_eq!(v.size, n);
        })
    });
    g.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, anchors, appends, proofs, verification);
criterion_main!(benches);
