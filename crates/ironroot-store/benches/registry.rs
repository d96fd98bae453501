//! Durable certificate-record writes per second, SQLite and PostgreSQL, beside an anchor: a raw
//! sqlx `INSERT` loop (autocommit, same durability settings) on a bare table of the same shape.
//!
//! Every measured write is acknowledged only after its COMMIT returned, i.e. durable
//! (SQLite WAL + synchronous=FULL; PostgreSQL synchronous_commit=on).
//!
//! Run: `IRONROOT_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo bench -p ironroot-store --bench registry`

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ironroot_store::sqlx::{self, Connection as _, Executor as _};
use ironroot_store::{CertificateKind, NewCertificate, NewDevice, Store, StoreOptions, on_backend};

static SERIAL: AtomicU64 = AtomicU64::new(1);

fn new_cert() -> NewCertificate {
    let n = SERIAL.fetch_add(1, Ordering::Relaxed);
    // ~500 bytes, like a P-256 device certificate.
    let mut der = vec![0x30u8; 500];
    der[..8].copy_from_slice(&n.to_be_bytes());
    NewCertificate {
        serial: ironroot_pki::Serial::from_be_bytes(&(u128::from(n) << 64 | 0xfeed).to_be_bytes())
            .expect("positive"),
        der,
        device_id: Some("bench-device".to_owned()),
        kind: CertificateKind::Operational,
        issuer: "intermediate-bench".to_owned(),
        subject: "CN=bench-device".to_owned(),
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
    }
}

const ANCHOR_TABLE: &str = "CREATE TABLE anchor (serial TEXT PRIMARY KEY, fingerprint TEXT NOT NULL \
     UNIQUE, device_id TEXT, body BYTEA NOT NULL)";
const ANCHOR_TABLE_SQLITE: &str = "CREATE TABLE anchor (serial TEXT PRIMARY KEY, fingerprint TEXT \
     NOT NULL UNIQUE, device_id TEXT, body BLOB NOT NULL)";

/// The anchor's own pool: one connection for SQLite (one writer, like the store's writer
/// pool), 16 for PostgreSQL; same durability settings as the store.
#[derive(Clone)]
enum Anchor {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

async fn anchor_insert(anchor: &Anchor) {
    let c = new_cert();
    macro_rules! insert {
        ($pool:expr) => {
            sqlx::query(
                "INSERT INTO anchor (serial, fingerprint, device_id, body) VALUES ($1, $2, $3, $4)",
            )
            .bind(c.serial.to_string())
            .bind(c.serial.to_string())
            .bind(c.device_id.as_deref())
            .bind(&c.der)
            .execute($pool)
            .await
            .map(|_| ())
        };
    }
    match anchor {
        Anchor::Sqlite(pool) => insert!(pool),
        Anchor::Postgres(pool) => insert!(pool),
    }
    .unwrap();
}

async fn record(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    tx.record_issued_certificate(&new_cert()).await.unwrap();
    tx.commit().await.unwrap();
}

/// Runs `iters` operations split over `tasks` concurrent tasks; returns the wall time.
async fn concurrently<T, F, Fut>(target: &T, iters: u64, tasks: u64, op: F) -> Duration
where
    T: Clone + Send + 'static,
    F: Fn(T) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let target = target.clone();
            let share = iters / tasks + u64::from(t < iters % tasks);
            tokio::spawn(async move {
                for _ in 0..share {
                    op(target.clone()).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    started.elapsed()
}

fn bench_backend(
    c: &mut Criterion,
    name: &str,
    store: Store,
    anchor: Anchor,
    rt: &tokio::runtime::Runtime,
) {
    let mut group = c.benchmark_group(format!("registry_{name}"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for tasks in [1u64, 16] {
        let s = store.clone();
        group.bench_function(format!("record_certificate_tasks{tasks}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(concurrently(&s, iters, tasks, |st| async move {
                    record(&st).await
                }))
            })
        });
        let a = anchor.clone();
        group.bench_function(format!("anchor_raw_insert_tasks{tasks}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(concurrently(&a, iters, tasks, |a| async move {
                    anchor_insert(&a).await
                }))
            })
        });
    }
    for tasks in [16u64, 64] {
        let committer = rt.block_on(async { store.group_committer(256) });
        group.bench_function(
            format!("record_certificate_group_commit_tasks{tasks}"),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(concurrently(
                        &committer,
                        iters,
                        tasks,
                        |committer| async move {
                            let new = new_cert();
                            committer
                                .run(move |tx| {
                                    Box::pin(
                                        async move { tx.record_issued_certificate(&new).await },
                                    )
                                })
                                .await
                                .unwrap();
                        },
                    ))
                })
            },
        );
    }
    group.finish();
}

async fn prepare(store: &Store, sqlite: bool) {
    store
        .add_device(&NewDevice::new("bench-device"))
        .await
        .unwrap();
    let mut conn = store.acquire().await.unwrap();
    let sql = if sqlite {
        ANCHOR_TABLE_SQLITE
    } else {
        ANCHOR_TABLE
    };
    on_backend!(conn.connection(), conn => conn.execute(sql).await.map(|_| ())).unwrap();
}

fn registry(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (sqlite, anchor) = rt.block_on(async {
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        prepare(&store, true).await;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join(ironroot_store::DATABASE_FILE))
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        (store, Anchor::Sqlite(pool))
    });
    bench_backend(c, "sqlite", sqlite.clone(), anchor, &rt);
    rt.block_on(sqlite.close());

    let admin = std::env::var("IRONROOT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("ironroot_bench_{}", std::process::id());
    let (base, _) = admin
        .rsplit_once('/')
        .expect("postgres URL with a database path");
    let url = format!("{base}/{name}");
    let pg = rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required: {e}"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let store = Store::open_with(&url, StoreOptions::default().with_max_connections(16))
            .await
            .unwrap();
        prepare(&store, false).await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .connect(&url)
            .await
            .unwrap();
        (store, Anchor::Postgres(pool))
    });
    let (pg, anchor) = pg;
    bench_backend(c, "postgres", pg.clone(), anchor, &rt);
    pgbench_anchor(&url);
    rt.block_on(async {
        pg.close().await;
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    });
}

/// The pgbench-style anchor in the same run: PostgreSQL's own load generator doing the same
/// durable single-row INSERT (autocommit) on the `anchor` table, 1 and 16 clients.
fn pgbench_anchor(url: &str) {
    let script = std::env::temp_dir().join(format!("ironroot-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "INSERT INTO anchor (serial, fingerprint, device_id, body) \
         SELECT v, v, 'bench-device', decode(repeat('30', 500), 'hex') \
         FROM (SELECT 'pgbench-' || nextval('anchor_pgbench')::text AS v) n;\n",
    )
    .unwrap();
    let psql = std::process::Command::new("psql")
        .args([url, "-qc", "CREATE SEQUENCE anchor_pgbench"])
        .status();
    if !matches!(psql, Ok(s) if s.success()) {
        panic!("psql is required for the pgbench anchor (Debian postgresql-client)");
    }
    for clients in ["1", "16"] {
        let out = std::process::Command::new("pgbench")
            .args(["-n", "-c", clients, "-j", "2", "-T", "8", "-f"])
            .arg(&script)
            .arg(url)
            .output()
            .expect("pgbench is required for the anchor (Debian postgresql-contrib / postgresql)");
        let text = String::from_utf8_lossy(&out.stdout);
        let tps = text
            .lines()
            .find(|l| l.starts_with("tps"))
            .unwrap_or("tps = ? (pgbench failed)");
        println!("pgbench_anchor/insert_clients{clients}: {tps}");
    }
    let _ = std::fs::remove_file(script);
}

criterion_group!(benches, registry);
criterion_main!(benches);
