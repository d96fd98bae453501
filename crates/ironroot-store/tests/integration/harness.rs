//! Runs one test body against a fresh SQLite database (temp dir) and a fresh PostgreSQL
//! database (created on `$IRONROOT_TEST_PG`, dropped afterwards).
//!
//! PostgreSQL being unreachable FAILS the test with the fix; it never skips.

use ironroot_store::{Store, StoreOptions};
use ironroot_testkit::pg;
use std::future::Future;

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
            let (url, name) = pg::create_database("ironroot_test").await;
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
        pg::drop_database(&name).await;
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
