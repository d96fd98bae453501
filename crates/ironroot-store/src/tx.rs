//! [`Transaction`]: one atomic unit of registry changes.
//!
//! Issuance and revocation follow the same shape:
//!
//! ```text
//!   build certificate in memory ──► tx.record_issued_certificate(..) ──► tx.commit() ──► hand out
//!   (nothing stored yet)             (row invisible to others)          (durable)        (only now)
//! ```
//!
//! A failure before `commit` returns rolls everything back (dropping the transaction is enough),
//! so the registry never holds a certificate that was not handed out; and because the
//! certificate is handed out only after `commit` returned, no certificate exists without its
//! record.

use sqlx::{Postgres, Sqlite};

use crate::changes::{self, Change, ChangeCursor, ChangeKind};
use crate::conn::Connection;
use crate::error::{Result, StoreError};
use crate::store::{Backend, Store};

enum TxInner {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// An open write transaction. Its methods mirror the [`Store`] repository methods.
///
/// Commit with [`Transaction::commit`]; dropping it rolls back.
pub struct Transaction {
    inner: TxInner,
    /// Change-feed rows to write just before COMMIT (see `changes`: on PostgreSQL that keeps
    /// the feed's serialising lock short).
    pending_changes: Vec<Change>,
    pub(crate) store: Store,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Transaction {
    pub(crate) fn sqlite(tx: sqlx::Transaction<'static, Sqlite>, store: Store) -> Self {
        Transaction {
            inner: TxInner::Sqlite(tx),
            pending_changes: Vec::new(),
            store,
        }
    }

    pub(crate) fn postgres(tx: sqlx::Transaction<'static, Postgres>, store: Store) -> Self {
        Transaction {
            inner: TxInner::Postgres(tx),
            pending_changes: Vec::new(),
            store,
        }
    }

    /// Which engine the transaction runs on.
    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    /// The transaction's connection, for queries of other crates (e.g. the audit log writing
    /// its entry in the same transaction) through [`on_backend!`](crate::on_backend).
    pub fn connection(&mut self) -> Connection<'_> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Connection::Sqlite(tx),
            TxInner::Postgres(tx) => Connection::Postgres(tx),
        }
    }

    /// Queues a change-feed entry, written when the transaction commits.
    pub(crate) fn push_change(&mut self, kind: ChangeKind, item: &str, at: i64) {
        self.pending_changes.push(Change {
            kind,
            item: item.to_owned(),
            at,
            cursor: ChangeCursor::default(),
        });
    }

    /// Commits. When this returns `Ok`, every change is durable (SQLite `synchronous=FULL`;
    /// PostgreSQL's default `synchronous_commit=on`).
    pub async fn commit(mut self) -> Result<()> {
        let op = "commit";
        let pending = std::mem::take(&mut self.pending_changes);
        if !pending.is_empty() {
            changes::write(&mut self.connection(), &pending).await?;
        }
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await.map_err(StoreError::db(op))?,
            TxInner::Postgres(tx) => tx.commit().await.map_err(StoreError::db(op))?,
        }
        if !pending.is_empty() {
            self.store.wake_local_subscribers();
        }
        Ok(())
    }

    /// Runs `SAVEPOINT`, `RELEASE SAVEPOINT` or `ROLLBACK TO SAVEPOINT` (group commit).
    pub(crate) async fn savepoint_command(&mut self, sql: &'static str) -> Result<()> {
        crate::on_backend!(self.connection(), c => {
            sqlx::query(sql).execute(&mut *c).await.map(|r| r.rows_affected())
        })
        .map_err(StoreError::db("manage savepoint"))?;
        Ok(())
    }

    /// How many change-feed entries are queued (to drop those of a failed group-commit job).
    pub(crate) fn pending_change_count(&self) -> usize {
        self.pending_changes.len()
    }

    /// Drops queued change-feed entries beyond the first `len`.
    pub(crate) fn truncate_pending_changes(&mut self, len: usize) {
        self.pending_changes.truncate(len);
    }

    /// Rolls back explicitly (dropping the transaction does the same, lazily).
    pub async fn rollback(self) -> Result<()> {
        let op = "roll back";
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback().await.map_err(StoreError::db(op)),
            TxInner::Postgres(tx) => tx.rollback().await.map_err(StoreError::db(op)),
        }
    }
}
