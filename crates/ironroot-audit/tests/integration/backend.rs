//! One log per test on a fresh backend — in memory, SQLite in a temporary data directory, or a
//! throwaway PostgreSQL database created on `$IRONROOT_TEST_PG` and dropped afterwards — and
//! the tampering an attacker with database access would do, as real SQL on the real tables.
//!
//! PostgreSQL being unreachable FAILS the test with the fix; it never skips.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironroot_audit::storage::{AppendBatch, CheckpointRow, StoredLeaf};
use ironroot_audit::tile::{RightEdge, Tile, TileId};
use ironroot_audit::{
    Audit, AuditConfig, Event, LogStorage, MemoryStorage, MemoryTables, NoteSigner, OpenError,
    Outcome, SqlStorage, StorageError, Timestamp, VerifyError, VerifyOptions, WitnessFile,
    leaf_hash, verify_log,
};
use ironroot_store::sqlx::{self, AssertSqlSafe, Executor as _};
use ironroot_store::{Store, StoreOptions, on_backend};
use ironroot_testkit::pg::{self, Database as PgDatabase};

pub const ORIGIN: &str = "ironroot.test/audit";

/// The log key of every test log (fixed, so external checkpoints can be compared).
pub fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[42u8; 32]).unwrap()
}

/// The `i`-th test event: every fifth one is a denial.
pub fn event(i: u64) -> Event {
    Event::new(
        ironroot_audit::EventKind::MqttConnect,
        format!("device:dev-{}", i % 7),
    )
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

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Sqlite,
    Postgres,
}

/// Either storage, so one test body serves all three backends (a plain delegation to the real
/// implementations, not a stand-in for them).
#[derive(Debug, Clone)]
pub enum AnyStorage {
    Memory(MemoryStorage),
    Sql(SqlStorage),
}

impl LogStorage for AnyStorage {
    async fn append(&self, batch: &AppendBatch) -> Result<(), StorageError> {
        match self {
            AnyStorage::Memory(s) => s.append(batch).await,
            AnyStorage::Sql(s) => s.append(batch).await,
        }
    }
    async fn read_leaves(
        &self,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<Vec<StoredLeaf>, StorageError> {
        match self {
            AnyStorage::Memory(s) => s.read_leaves(start, end, limit).await,
            AnyStorage::Sql(s) => s.read_leaves(start, end, limit).await,
        }
    }
    async fn read_tiles(&self, ids: &[TileId]) -> Result<Vec<Tile>, StorageError> {
        match self {
            AnyStorage::Memory(s) => s.read_tiles(ids).await,
            AnyStorage::Sql(s) => s.read_tiles(ids).await,
        }
    }
    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StorageError> {
        match self {
            AnyStorage::Memory(s) => s.latest_checkpoint().await,
            AnyStorage::Sql(s) => s.latest_checkpoint().await,
        }
    }
    async fn read_checkpoints(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<CheckpointRow>, StorageError> {
        match self {
            AnyStorage::Memory(s) => s.read_checkpoints(after, limit).await,
            AnyStorage::Sql(s) => s.read_checkpoints(after, limit).await,
        }
    }
}

/// A throwaway PostgreSQL database, dropped with the test.
pub async fn pg_database() -> PgDatabase {
    PgDatabase::create("ironroot_audit_test").await
}

/// A value bound to a tamper statement.
pub enum Bind {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
}

/// A copy of the whole log taken by [`TestLog::backup`].
pub enum Backup {
    Memory(MemoryTables),
    /// Copies of the SQLite files (database and, if present, its WAL), taken while closed.
    Sqlite(tempfile::TempDir),
    /// A `pg_dump` archive of the whole database.
    Postgres(tempfile::TempDir),
}

/// A log on a fresh backend, with a data directory for its witness (and SQLite database).
pub struct TestLog {
    pub kind: Kind,
    pub storage: AnyStorage,
    /// The data directory (SQLite database, witness file).
    pub dir: tempfile::TempDir,
    pub store: Option<Store>,
    pub pg: Option<PgDatabase>,
}

impl TestLog {
    pub async fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, pg) = match kind {
            Kind::Memory => (None, None),
            Kind::Sqlite => (
                Some(
                    Store::open_data_dir(dir.path())
                        .await
                        .expect("open sqlite store"),
                ),
                None,
            ),
            Kind::Postgres => {
                let db = pg_database().await;
                let store = Store::open_with(&db.url, StoreOptions::default())
                    .await
                    .expect("open postgres store");
                (Some(store), Some(db))
            }
        };
        let storage = match &store {
            None => AnyStorage::Memory(MemoryStorage::new()),
            Some(store) => AnyStorage::Sql(SqlStorage::new(store.clone())),
        };
        TestLog {
            kind,
            storage,
            dir,
            store,
            pg,
        }
    }

    /// The store (SQL backends only).
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("an SQL backend")
    }

    /// A URL another process can open (SQL backends only).
    pub fn url(&self) -> String {
        match (&self.pg, self.kind) {
            (Some(pg), _) => pg.url.clone(),
            (None, Kind::Sqlite) => format!(
                "sqlite://{}",
                self.dir
                    .path()
                    .join(ironroot_store::DATABASE_FILE)
                    .display()
            ),
            _ => panic!("the memory backend has no URL"),
        }
    }

    pub fn storage(&self) -> Arc<AnyStorage> {
        Arc::new(self.storage.clone())
    }

    pub fn witness(&self) -> WitnessFile {
        WitnessFile::new(self.dir.path().join("witness"))
    }

    /// Opens a writer with the test key; with or without the witness file.
    pub async fn try_open_writer(&self, witness: bool) -> Result<Audit, OpenError> {
        let config = AuditConfig {
            witness: witness.then(|| self.witness()),
            ..AuditConfig::default()
        };
        Audit::open(self.storage(), signer(), config)
            .await
            .map(|(audit, _task)| audit)
    }

    pub async fn open_writer(&self, witness: bool) -> Audit {
        self.try_open_writer(witness).await.expect("open writer")
    }

    /// Records events `from..to` in commits of `batch` events each. Must run on a
    /// current-thread runtime: every record of a batch is queued before the writer runs again,
    /// so the checkpoint sizes are exactly the multiples of `batch`.
    pub async fn record_range(audit: &Audit, from: u64, to: u64, batch: u64) {
        let mut i = from;
        while i < to {
            let end = (i + batch).min(to);
            let handles: Vec<_> = (i..end)
                .map(|j| {
                    let audit = audit.clone();
                    tokio::spawn(async move { audit.record(event(j)).await })
                })
                .collect();
            for (j, h) in (i..end).zip(handles) {
                let receipt = h.await.unwrap().expect("record");
                assert_eq!(receipt.index, j, "records are committed in order");
                assert_eq!(receipt.checkpoint.size, end, "one commit per batch");
            }
            i = end;
        }
    }

    /// A log of `n` events committed in batches of `batch`.
    pub async fn build(&self, n: u64, batch: u64, witness: bool) -> Audit {
        let audit = self.open_writer(witness).await;
        Self::record_range(&audit, 0, n, batch).await;
        audit
    }

    /// Verifies the stored log with the test key and the given external checkpoints.
    pub async fn verify(&self, external: Vec<String>) -> Result<u64, VerifyError> {
        let options = VerifyOptions {
            external_checkpoints: external,
            page: 100,
        };
        verify_log(self.storage(), signer().verifier(), &options)
            .await
            .map(|v| v.size)
    }

    pub async fn leaf(&self, index: u64) -> Vec<u8> {
        let mut rows = self.storage.read_leaves(index, index + 1, 1).await.unwrap();
        rows.pop().expect("leaf is stored").data
    }

    pub async fn checkpoint_note(&self, size: u64) -> String {
        let rows = self.storage.read_checkpoints(size - 1, 1).await.unwrap();
        assert_eq!(rows[0].size, size);
        rows[0].note.clone()
    }

    pub async fn checkpoint_count(&self) -> usize {
        self.storage
            .read_checkpoints(0, usize::MAX)
            .await
            .unwrap()
            .len()
    }

    /// Runs one statement in its own transaction, as an attacker with database access would;
    /// returns the number of rows it changed.
    pub async fn sql(&self, statement: &str, binds: Vec<Bind>) -> u64 {
        let mut tx = self.store().begin().await.expect("begin");
        let changed = on_backend!(tx.connection(), c => {
            let mut q = sqlx::query(AssertSqlSafe(statement.to_owned()));
            for b in binds {
                q = match b {
                    Bind::Int(v) => q.bind(v),
                    Bind::Bytes(v) => q.bind(v),
                    Bind::Text(v) => q.bind(v),
                };
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
        tx.commit().await.expect("commit");
        changed
    }

    fn memory(&self) -> &MemoryStorage {
        match &self.storage {
            AnyStorage::Memory(m) => m,
            AnyStorage::Sql(_) => unreachable!("memory backend"),
        }
    }

    /// UPDATE audit_leaves SET data = … WHERE idx = …
    pub async fn set_leaf(&self, index: u64, data: Vec<u8>) {
        if self.kind == Kind::Memory {
            self.memory()
                .edit(|t| *t.leaves.get_mut(&index).unwrap() = data);
            return;
        }
        let n = self
            .sql(
                "UPDATE audit_leaves SET data = $1 WHERE idx = $2",
                vec![Bind::Bytes(data), Bind::Int(index as i64)],
            )
            .await;
        assert_eq!(n, 1);
    }

    /// Changes an event the way an attacker covering a denial would: decode, edit, re-encode.
    pub async fn edit_event(&self, index: u64, f: impl FnOnce(&mut Event)) {
        let mut e = Event::decode(&self.leaf(index).await).unwrap();
        f(&mut e);
        self.set_leaf(index, e.encode().unwrap()).await;
    }

    /// DELETE FROM audit_leaves WHERE idx = …
    pub async fn delete_leaf(&self, index: u64) {
        if self.kind == Kind::Memory {
            self.memory().edit(|t| t.leaves.remove(&index)).unwrap();
            return;
        }
        let n = self
            .sql(
                "DELETE FROM audit_leaves WHERE idx = $1",
                vec![Bind::Int(index as i64)],
            )
            .await;
        assert_eq!(n, 1);
    }

    /// Deletes a row and renumbers every later row down by one (closing the gap).
    pub async fn delete_and_renumber(&self, index: u64) {
        if self.kind == Kind::Memory {
            self.memory().edit(|t| {
                let rest: Vec<_> = t
                    .leaves
                    .range(index + 1..)
                    .map(|(_, v)| v.clone())
                    .collect();
                t.leaves.retain(|i, _| *i < index);
                for (k, v) in rest.into_iter().enumerate() {
                    t.leaves.insert(index + k as u64, v);
                }
            });
            return;
        }
        let i = index as i64;
        self.sql(
            "DELETE FROM audit_leaves WHERE idx = $1",
            vec![Bind::Int(i)],
        )
        .await;
        // Two steps: a primary key is checked row by row, so shift through negative ids.
        self.sql(
            "UPDATE audit_leaves SET idx = -idx WHERE idx > $1",
            vec![Bind::Int(i)],
        )
        .await;
        self.sql(
            "UPDATE audit_leaves SET idx = -idx - 1 WHERE idx < 0",
            vec![],
        )
        .await;
    }

    /// Swaps the ids of two rows.
    pub async fn swap_leaves(&self, a: u64, b: u64) {
        if self.kind == Kind::Memory {
            self.memory().edit(|t| {
                let x = t.leaves[&a].clone();
                let y = t.leaves[&b].clone();
                t.leaves.insert(a, y);
                t.leaves.insert(b, x);
            });
            return;
        }
        let (a, b) = (a as i64, b as i64);
        for (from, to) in [(a, -1), (b, a), (-1, b)] {
            let n = self
                .sql(
                    "UPDATE audit_leaves SET idx = $1 WHERE idx = $2",
                    vec![Bind::Int(to), Bind::Int(from)],
                )
                .await;
            assert_eq!(n, 1);
        }
    }

    /// DELETE FROM audit_leaves WHERE idx >= …
    pub async fn truncate_from(&self, index: u64) {
        if self.kind == Kind::Memory {
            self.memory().edit(|t| t.leaves.retain(|i, _| *i < index));
            return;
        }
        self.sql(
            "DELETE FROM audit_leaves WHERE idx >= $1",
            vec![Bind::Int(index as i64)],
        )
        .await;
    }

    /// INSERT INTO audit_leaves …
    pub async fn insert_leaf(&self, index: u64, data: Vec<u8>) {
        if self.kind == Kind::Memory {
            self.memory().edit(|t| t.leaves.insert(index, data));
            return;
        }
        self.sql(
            "INSERT INTO audit_leaves (idx, data) VALUES ($1, $2)",
            vec![Bind::Int(index as i64), Bind::Bytes(data)],
        )
        .await;
    }

    /// UPDATE audit_checkpoints SET note = … WHERE size = …
    pub async fn set_checkpoint(&self, size: u64, note: String) {
        if self.kind == Kind::Memory {
            let old = self.memory().edit(|t| t.checkpoints.insert(size, note));
            assert!(old.is_some());
            return;
        }
        let n = self
            .sql(
                "UPDATE audit_checkpoints SET note = $1 WHERE size = $2",
                vec![Bind::Text(note), Bind::Int(size as i64)],
            )
            .await;
        assert_eq!(n, 1);
    }

    /// DELETE FROM audit_checkpoints WHERE size = …
    pub async fn delete_checkpoint(&self, size: u64) {
        if self.kind == Kind::Memory {
            self.memory().edit(|t| t.checkpoints.remove(&size)).unwrap();
            return;
        }
        let n = self
            .sql(
                "DELETE FROM audit_checkpoints WHERE size = $1",
                vec![Bind::Int(size as i64)],
            )
            .await;
        assert_eq!(n, 1);
    }

    /// Flips one byte of a stored tile.
    pub async fn flip_tile_byte(&self, id: TileId, at: usize) {
        let tile = self.storage.read_tiles(&[id]).await.unwrap().pop().unwrap();
        let mut data = tile.as_bytes().to_vec();
        data[at] ^= 1;
        if self.kind == Kind::Memory {
            self.memory().edit(|t| t.tiles.insert(id, data));
            return;
        }
        let n = self
            .sql(
                "UPDATE audit_tiles SET data = $1 WHERE level = $2 AND idx = $3",
                vec![
                    Bind::Bytes(data),
                    Bind::Int(id.level.into()),
                    Bind::Int(id.index as i64),
                ],
            )
            .await;
        assert_eq!(n, 1);
    }

    /// Recomputes every stored tree hash from the (tampered) leaves, as an attacker covering
    /// tracks would.
    pub async fn rewrite_tiles(&self) {
        let mut edge = RightEdge::new();
        let leaves = self
            .storage
            .read_leaves(0, u64::MAX, usize::MAX)
            .await
            .unwrap();
        for leaf in &leaves {
            edge.push_leaf(leaf_hash(&leaf.data));
        }
        let tiles = edge.take_dirty();
        if self.kind == Kind::Memory {
            self.memory().edit(|t| {
                t.tiles.clear();
                for tile in tiles {
                    t.tiles.insert(tile.id, tile.as_bytes().to_vec());
                }
            });
            return;
        }
        self.sql("DELETE FROM audit_tiles", vec![]).await;
        for tile in tiles {
            self.sql(
                "INSERT INTO audit_tiles (level, idx, data) VALUES ($1, $2, $3)",
                vec![
                    Bind::Int(tile.id.level.into()),
                    Bind::Int(tile.id.index as i64),
                    Bind::Bytes(tile.as_bytes().to_vec()),
                ],
            )
            .await;
        }
    }

    /// Deletes every row of the three tables.
    pub async fn wipe(&self) {
        if self.kind == Kind::Memory {
            self.memory().edit(|t| *t = MemoryTables::default());
            return;
        }
        for table in ["audit_leaves", "audit_tiles", "audit_checkpoints"] {
            self.sql(&format!("DELETE FROM {table}"), vec![]).await;
        }
    }

    /// Makes every append fail inside its transaction (after the leaves and tiles were
    /// written, at the checkpoint insert) — SQL backends with a real trigger.
    pub async fn fail_appends(&self, on: bool) {
        match (self.kind, on) {
            (Kind::Memory, _) => self.memory().edit(|t| t.fail_appends = on),
            (Kind::Sqlite, true) => {
                self.sql(
                    "CREATE TRIGGER audit_test_fail BEFORE INSERT ON audit_checkpoints \
                     BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                    vec![],
                )
                .await;
            }
            (Kind::Postgres, true) => {
                self.sql(
                    "CREATE FUNCTION audit_test_fail() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
                    vec![],
                )
                .await;
                self.sql(
                    "CREATE TRIGGER audit_test_fail BEFORE INSERT ON audit_checkpoints \
                     FOR EACH ROW EXECUTE FUNCTION audit_test_fail()",
                    vec![],
                )
                .await;
            }
            (Kind::Sqlite, false) => {
                self.sql("DROP TRIGGER audit_test_fail", vec![]).await;
            }
            (Kind::Postgres, false) => {
                self.sql("DROP TRIGGER audit_test_fail ON audit_checkpoints", vec![])
                    .await;
                self.sql("DROP FUNCTION audit_test_fail()", vec![]).await;
            }
        }
    }

    /// Takes a backup of the whole database the way an operator would: a copy of the SQLite
    /// files while no connection is open, or a `pg_dump`. Writers opened before must be
    /// dropped first; open new ones afterwards.
    pub async fn backup(&mut self) -> Backup {
        match self.kind {
            Kind::Memory => Backup::Memory(self.memory().edit(|t| t.clone())),
            Kind::Sqlite => {
                self.close_store().await;
                let copy = tempfile::tempdir().unwrap();
                copy_sqlite_files(self.dir.path(), copy.path());
                self.reopen_store().await;
                Backup::Sqlite(copy)
            }
            Kind::Postgres => {
                let copy = tempfile::tempdir().unwrap();
                let file = copy.path().join("audit.dump");
                ironroot_testkit::run_ok(
                    std::process::Command::new(ironroot_testkit::tool("pg_dump"))
                        .arg("--format=custom")
                        .arg("--file")
                        .arg(&file)
                        .arg(self.url()),
                );
                Backup::Postgres(copy)
            }
        }
    }

    /// Puts a backup back in place of the current database.
    pub async fn restore(&mut self, backup: Backup) {
        match backup {
            Backup::Memory(tables) => self.memory().edit(|t| *t = tables),
            Backup::Sqlite(copy) => {
                self.close_store().await;
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(sqlite_file(self.dir.path(), suffix));
                }
                copy_sqlite_files(copy.path(), self.dir.path());
                self.reopen_store().await;
            }
            Backup::Postgres(copy) => {
                self.close_store().await;
                let name = self.pg.as_ref().unwrap().name.clone();
                let mut admin = pg::admin().await;
                admin
                    .execute(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
                    .await
                    .unwrap();
                admin
                    .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .unwrap();
                ironroot_testkit::run_ok(
                    std::process::Command::new(ironroot_testkit::tool("pg_restore"))
                        .arg("--no-owner")
                        .arg("--exit-on-error")
                        .arg("--dbname")
                        .arg(self.url())
                        .arg(copy.path().join("audit.dump")),
                );
                self.reopen_store().await;
            }
        }
    }

    async fn close_store(&mut self) {
        self.store().close().await;
    }

    async fn reopen_store(&mut self) {
        let store = Store::open_with(&self.url(), StoreOptions::default())
            .await
            .expect("reopen store");
        self.storage = AnyStorage::Sql(SqlStorage::new(store.clone()));
        self.store = Some(store);
    }
}

fn sqlite_file(dir: &Path, suffix: &str) -> PathBuf {
    dir.join(format!("{}{suffix}", ironroot_store::DATABASE_FILE))
}

/// Copies the database file and, if present, its write-ahead log.
fn copy_sqlite_files(from: &Path, to: &Path) {
    std::fs::copy(sqlite_file(from, ""), sqlite_file(to, "")).expect("copy database file");
    let wal = sqlite_file(from, "-wal");
    if wal.exists() {
        std::fs::copy(&wal, sqlite_file(to, "-wal")).expect("copy WAL");
    }
}

/// Declares `<name>::{memory, sqlite, postgres}` tests for each `async fn name(&mut TestLog)`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::backend::{Kind, TestLog};
                #[tokio::test]
                async fn memory() {
                    super::$name(&mut TestLog::new(Kind::Memory).await).await
                }
                #[tokio::test]
                async fn sqlite() {
                    super::$name(&mut TestLog::new(Kind::Sqlite).await).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name(&mut TestLog::new(Kind::Postgres).await).await
                }
            }
        )*
    };
}
pub(crate) use on_every_backend;
