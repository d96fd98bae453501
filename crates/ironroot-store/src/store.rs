//! The [`Store`] handle: opening either backend, migrations, connections and transactions.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite};
use tokio::sync::watch;

use crate::conn::Connection;
use crate::error::{Result, StoreError};
use crate::tx::Transaction;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// File name of the SQLite database inside a data directory.
pub const DATABASE_FILE: &str = "ironroot.db";

/// Which database engine a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Embedded SQLite (WAL, `synchronous=FULL`): the single-node default.
    Sqlite,
    /// PostgreSQL: for several server replicas.
    Postgres,
}

impl Backend {
    /// "sqlite" or "postgres".
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Tunables for [`Store::open_with`]. The defaults suit a server; tests shorten nothing.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    max_connections: u32,
    busy_timeout: Duration,
    poll_interval: Duration,
    connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl StoreOptions {
    /// Pool size: PostgreSQL connections, or SQLite reader connections (SQLite always has
    /// exactly one writer connection besides them).
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a SQLite writer waits for another process (e.g. the CLI) holding the write lock.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How often a change subscription polls when nothing woke it (changes made by other
    /// processes on SQLite; a safety net behind NOTIFY on PostgreSQL).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long opening the store or taking a pooled connection may wait (default 30 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The pool size set by [`StoreOptions::with_max_connections`].
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// The poll interval set by [`StoreOptions::with_poll_interval`].
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }
}

pub(crate) enum Pools {
    /// One writer connection (writers queue fairly in the pool instead of spinning on
    /// SQLITE_BUSY) and a pool of readers (WAL lets them run beside the writer).
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

pub(crate) struct Inner {
    pub(crate) pools: Pools,
    /// Bumped after every local commit that wrote to the change feed, to wake subscribers in
    /// this process at once.
    pub(crate) local_changes: watch::Sender<u64>,
    pub(crate) options: StoreOptions,
    /// Change rows of unknown kinds skipped by this process (see `changes`).
    pub(crate) unknown_kinds: crate::changes::UnknownKinds,
}

/// A handle on the registry database; cheap to clone, shared by all tasks.
///
/// Reads run on a pooled connection; every write runs in a [`Transaction`], either one the
/// caller opened with [`Store::begin`] (to group several changes, e.g. a certificate and the
/// device state it implies) or one the convenience methods open and commit themselves.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// A pooled connection of either backend, for reads outside a transaction.
#[derive(Debug)]
pub enum PooledConnection {
    /// A SQLite reader connection.
    Sqlite(PoolConnection<Sqlite>),
    /// A PostgreSQL connection.
    Postgres(PoolConnection<Postgres>),
}

impl PooledConnection {
    /// The connection, for [`on_backend!`](crate::on_backend).
    pub fn connection(&mut self) -> Connection<'_> {
        match self {
            PooledConnection::Sqlite(c) => Connection::Sqlite(c),
            PooledConnection::Postgres(c) => Connection::Postgres(c),
        }
    }
}

fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The migrations this build knows for a backend: (version, description).
pub fn known_migrations(backend: Backend) -> Vec<(i64, &'static str)> {
    let list = match backend {
        Backend::Sqlite => embedded::SQLITE,
        Backend::Postgres => embedded::POSTGRES,
    };
    list.iter().map(|&(v, d, _)| (v, d)).collect()
}

impl Store {
    /// Opens (creating when needed) the database at `url` and applies pending migrations.
    ///
    /// `sqlite://PATH` (add `?mode=rwc` or nothing: the file is created when missing) or
    /// `postgres://user@host/db`.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit options.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => {
                let connect = SqliteConnectOptions::from_str(url).map_err(|source| {
                    StoreError::InvalidUrl {
                        backend: "sqlite",
                        source,
                    }
                })?;
                Store::open_sqlite(connect, options).await
            }
            "postgres" | "postgresql" => {
                let connect =
                    PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
                        backend: "postgres",
                        source,
                    })?;
                Store::open_postgres(connect, options).await
            }
            other => Err(StoreError::UnsupportedUrl {
                scheme: other.chars().take(32).collect(),
            }),
        }
    }

    /// Opens `DIR/ironroot.db`, creating the directory (mode 0700) and the database if needed.
    pub async fn open_data_dir(dir: &Path) -> Result<Store> {
        create_private_dir(dir)?;
        let connect = SqliteConnectOptions::new().filename(dir.join(DATABASE_FILE));
        Store::open_sqlite(connect, StoreOptions::default()).await
    }

    async fn open_sqlite(connect: SqliteConnectOptions, options: StoreOptions) -> Result<Store> {
        // Durability: WAL + synchronous=FULL fsyncs the WAL on every commit, so a commit that
        // returned survives power loss, not only a process crash (NORMAL would only survive the
        // latter). foreign_keys is off by default in SQLite; the schema relies on it.
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let connect_err = |source| StoreError::Connect {
            backend: "sqlite",
            source,
        };
        // A pooled SQLite connection is an open file in this process: it cannot go stale the
        // way a network connection can, so sqlx's liveness ping before every acquire
        // (`test_before_acquire`, one extra round trip, ~40 µs under load) is pure overhead.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(connect_err)?;
        migrator(embedded::SQLITE)
            .run(&writer)
            .await
            .map_err(StoreError::Migrate)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .test_before_acquire(false)
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(connect_err)?;
        Ok(Store::from_pools(Pools::Sqlite { writer, reader }, options))
    }

    async fn open_postgres(connect: PgConnectOptions, options: StoreOptions) -> Result<Store> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(|source| StoreError::Connect {
                backend: "postgres",
                source,
            })?;
        migrator(embedded::POSTGRES)
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(Store::from_pools(Pools::Postgres(pool), options))
    }

    fn from_pools(pools: Pools, options: StoreOptions) -> Store {
        let (local_changes, _) = watch::channel(0);
        Store {
            inner: Arc::new(Inner {
                pools,
                local_changes,
                options,
                unknown_kinds: Default::default(),
            }),
        }
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        match self.inner.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`, taking the write lock at
    /// once, so a read-then-write inside it can never fail with a stale snapshot.
    ///
    /// Dropping the transaction without [`Transaction::commit`] rolls everything back.
    pub async fn begin(&self) -> Result<Transaction> {
        let op = "begin transaction";
        Ok(match &self.inner.pools {
            Pools::Sqlite { writer, .. } => Transaction::sqlite(
                writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(StoreError::db(op))?,
                self.clone(),
            ),
            Pools::Postgres(pool) => Transaction::postgres(
                pool.begin().await.map_err(StoreError::db(op))?,
                self.clone(),
            ),
        })
    }

    /// A pooled connection for reads (and for other crates' own queries outside a transaction).
    pub async fn acquire(&self) -> Result<PooledConnection> {
        let op = "acquire connection";
        Ok(match &self.inner.pools {
            Pools::Sqlite { reader, .. } => {
                PooledConnection::Sqlite(reader.acquire().await.map_err(StoreError::db(op))?)
            }
            Pools::Postgres(pool) => {
                PooledConnection::Postgres(pool.acquire().await.map_err(StoreError::db(op))?)
            }
        })
    }

    /// The migration versions recorded as applied in the database, ascending.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let mut conn = self.acquire().await?;
        let rows: Vec<i64> = crate::on_backend!(conn.connection(), c => {
            sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&mut *c)
            .await
        })
        .map_err(StoreError::db("read applied migrations"))?;
        Ok(rows)
    }

    /// Closes every pooled connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        match &self.inner.pools {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }

    /// Wakes change subscribers of this process after a commit that wrote changes.
    pub(crate) fn wake_local_subscribers(&self) {
        self.inner
            .local_changes
            .send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Current time in seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| StoreError::DataDir {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_never_echo_the_database_url() {
        for url in [
            "mysql://admin:hunter2@db.example/ironroot",
            "postgres://admin:hunter2@127.0.0.1:1/ironroot",
            "postgres://admin:hunter2@[::1:bad/ironroot",
        ] {
            let options = StoreOptions::default().with_connect_timeout(Duration::from_secs(1));
            let err = Store::open_with(url, options).await.unwrap_err();
            let shown = format!("{err} / {err:?}");
            assert!(!shown.contains("hunter2"), "{url} leaked into {shown}");
        }
    }
}
