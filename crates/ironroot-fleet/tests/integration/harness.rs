//! One test body, two databases: a fresh SQLite data directory and a fresh PostgreSQL database
//! (created on `$IRONROOT_TEST_PG`, dropped afterwards), each with the real audit log.

use std::future::Future;
use std::sync::Arc;

use ironroot_audit::{Audit, Event, LogStorage as _, SqlStorage};
use ironroot_fleet::{Fleet, Origin};
use ironroot_store::sqlx::{self, AssertSqlSafe};
use ironroot_store::{Backend, Store, on_backend};
use ironroot_testkit::pg;

/// A registry, its audit log and the fleet service on them.
pub struct Env {
    pub store: Store,
    pub fleet: Fleet,
    _dir: tempfile::TempDir,
    _pg: Option<pg::Database>,
}

/// The operator every test acts as.
pub fn alice() -> Origin {
    Origin::new("operator:alice", "cli")
}

/// Runs `body` once on SQLite and once on PostgreSQL.
pub async fn on_both<F, Fut>(body: F)
where
    F: Fn(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (store, db) = if postgres {
            let db = pg::Database::create("fleet").await;
            (Store::open(&db.url).await.unwrap(), Some(db))
        } else {
            (Store::open_data_dir(dir.path()).await.unwrap(), None)
        };
        let audit = Arc::new(Audit::open_store(&store, dir.path()).await.unwrap());
        let fleet = Fleet::new(store.clone(), audit);
        body(Env {
            store,
            fleet,
            _dir: dir,
            _pg: db,
        })
        .await;
    }
}

impl Env {
    /// Every audit entry, oldest first.
    pub async fn events(&self) -> Vec<Event> {
        SqlStorage::new(self.store.clone())
            .read_leaves(0, u64::MAX, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|l| Event::decode(&l.data).unwrap())
            .collect()
    }

    /// Makes every further audit append fail (a trigger refuses inserts into the log's
    /// leaves), as a full disk or a broken log database would.
    pub async fn break_audit_log(&self) {
        let statements: &[&str] = match self.store.backend() {
            Backend::Sqlite => &["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_leaves \
                 BEGIN SELECT RAISE(ABORT, 'audit log made unwritable by the test'); END"],
            _ => &[
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'audit log made unwritable by the test'; END $$",
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_leaves \
                 FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
            ],
        };
        let mut tx = self.store.begin().await.unwrap();
        for s in statements {
            on_backend!(tx.connection(), c => {
                sqlx::query(AssertSqlSafe(s.to_string())).execute(&mut *c).await.map(|_| ())
            })
            .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        tx.commit().await.unwrap();
    }
}
