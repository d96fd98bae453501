//! Runs one test body against a fresh SQLite database (temp dir) and a fresh PostgreSQL
//! database (created on `$IRONROOT_TEST_PG`, dropped afterwards).
//!
//! PostgreSQL being unreachable FAILS the test with the fix; it never skips.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use ironroot_store::sqlx::{Connection as _, Executor as _, PgConnection};
use ironroot_store::{Store, StoreOptions};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh database and a store opened on it.
#[derive(Clone)]
pub struct TestDb {
    pub store: Store,
    /// URL another `Store` (another replica or process) can open.
    pub url: String,
    pub backend: Db,
}

impl TestDb {
    /// Opens a second, independent store on the same database.
    pub async fn open_again(&self) -> Store {
        Store::open_with(&self.url, options())
            .await
            .expect("reopen test database")
    }
}

/// Short poll interval? No: tests use the production defaults, so timing assertions are honest.
pub fn options() -> StoreOptions {
    StoreOptions::default()
}

pub fn pg_admin_url() -> String {
    std::env::var("IRONROOT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn pg_admin() -> PgConnection {
    let url = pg_admin_url();
    PgConnection::connect(&url).await.unwrap_or_else(|err| {
        panic!(
            "PostgreSQL is required for the store tests but {url} is unreachable: {err}\n\
             start it (or set IRONROOT_TEST_PG to a reachable server) — `bash .ci/run` does both"
        )
    })
}

/// `admin_url` with its database name replaced.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "ironroot_test_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(String),
}

async fn create(db: Db) -> (TestDb, Cleanup) {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("ironroot.db");
            let url = format!("sqlite://{}", path.display());
            let store = Store::open_with(&url, options())
                .await
                .expect("open sqlite store");
            let test = TestDb {
                store,
                url,
                backend: db,
            };
            (test, Cleanup::Sqlite(dir))
        }
        Db::Postgres => {
            let name = unique_name();
            let mut admin = pg_admin().await;
            admin
                .execute(ironroot_store::sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name}"
                )))
                .await
                .expect("create throwaway database");
            let url = with_database(&pg_admin_url(), &name);
            let store = Store::open_with(&url, options())
                .await
                .expect("open postgres store");
            let test = TestDb {
                store,
                url,
                backend: db,
            };
            (test, Cleanup::Postgres(name))
        }
    }
}

async fn cleanup(cleanup: Cleanup) {
    if let Cleanup::Postgres(name) = cleanup {
        let mut admin = pg_admin().await;
        admin
            .execute(ironroot_store::sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .expect("drop throwaway database");
    }
}

/// Runs `body` on a fresh database of `db`, cleans up, and re-raises the body's panic.
pub async fn run<F, Fut>(db: Db, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (test, guard) = create(db).await;
    let store = test.store.clone();
    let outcome = tokio::spawn(body(test)).await;
    store.close().await;
    cleanup(guard).await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Declares `<name>::sqlite` and `<name>::postgres` tests for each `async fn name(TestDb)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    crate::harness::run(crate::harness::Db::Sqlite, super::$name).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    crate::harness::run(crate::harness::Db::Postgres, super::$name).await
                }
            }
        )*
    };
}
pub(crate) use both_backends;

#[test]
fn database_name_replacement_keeps_the_rest_of_the_url() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}
