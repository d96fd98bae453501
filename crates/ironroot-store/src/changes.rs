//! The change feed: how every server replica and broker learns, within a second, that a device
//! changed, a certificate was revoked or a policy was edited — by any process, including the
//! offline CLI.
//!
//! ```text
//!  writer tx ── INSERT INTO changes (kind, item) ──► COMMIT ──┬─► (PostgreSQL) NOTIFY ironroot_changes 'kind:item'
//!                                                              └─► (same process) watch channel bump
//!  ChangeSubscription::next():  changes_since(cursor) ──► empty? wait for NOTIFY / bump / poll tick ──► retry
//! ```
//!
//! Rows are the truth; wake-ups are only hints, so a lost NOTIFY or a change made by another
//! process (SQLite has no NOTIFY) costs at most one poll interval (100 ms by default).
//!
//! Ordering and gaps: change rows become visible in `seq` order on both backends, so a reader
//! polling `seq > cursor` never skips one. SQLite runs one writer at a time. On PostgreSQL a
//! transaction writes its change rows just before COMMIT, and a trigger makes every insert into
//! `changes` take a transaction-level advisory lock first; the lock is released only after the
//! commit is visible, so a later `seq` can never become visible before an earlier one. The cost
//! is that change-writing commits on PostgreSQL run one at a time (lock held for one insert and
//! the commit's WAL flush); registry writes without changes (issuance) are not affected.

use std::collections::VecDeque;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::conn::Connection;
use crate::error::{Result, StoreError};
use crate::on_backend;
use crate::store::{Pools, Store, now};
use crate::tx::Transaction;
use crate::validate;

/// The PostgreSQL NOTIFY channel; payload `kind:item`.
pub const NOTIFY_CHANNEL: &str = "ironroot_changes";

/// Largest batch one poll reads.
const BATCH: u32 = 256;

text_enum! {
    /// What changed; the change's `item` names which one.
    ChangeKind, "changes", "kind" {
        /// A device's state, groups, attributes or owner (item: device id).
        Device = "device",
        /// A certificate was revoked (item: serial).
        CertificateRevoked = "certificate_revoked",
        /// A policy or its attachments (item: policy name).
        Policy = "policy",
        /// A group's attachments (item: group name).
        Group = "group",
    }
}

/// A position in the change feed: the sequence number of the last change seen.
/// [`ChangeCursor::default`] is the very beginning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeCursor(pub i64);

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// Which one: a device id, a serial, a policy or group name.
    pub item: String,
    /// When (seconds since the Unix epoch).
    pub at: i64,
    /// The feed position just after this change: resume from here.
    pub cursor: ChangeCursor,
}

type ChangeRow = (i64, String, String, i64);

/// Writes a transaction's buffered change rows (called just before COMMIT).
pub(crate) async fn write(conn: &mut Connection<'_>, pending: &[Change]) -> Result<()> {
    for change in pending {
        on_backend!(&mut *conn, c => {
            sqlx::query("INSERT INTO changes (kind, item, changed_at) VALUES ($1, $2, $3)")
                .bind(change.kind.as_str())
                .bind(&change.item)
                .bind(change.at)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db("record change"))?;
    }
    Ok(())
}

pub(crate) async fn since(
    conn: &mut Connection<'_>,
    from: ChangeCursor,
    limit: u32,
) -> Result<Vec<Change>> {
    let limit = i64::from(limit.clamp(1, 10_000));
    let rows: Vec<ChangeRow> = on_backend!(conn, c => {
        sqlx::query_as(
            "SELECT seq, kind, item, changed_at FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(from.0)
        .bind(limit)
        .fetch_all(&mut **c)
        .await
    })
    .map_err(StoreError::db("read change feed"))?;
    rows.into_iter()
        .map(|(seq, kind, item, at)| {
            Ok(Change {
                kind: ChangeKind::from_name(&kind).ok_or(StoreError::UnknownChangeKind(kind))?,
                item,
                at,
                cursor: ChangeCursor(seq),
            })
        })
        .collect()
}

pub(crate) async fn cursor_now(conn: &mut Connection<'_>) -> Result<ChangeCursor> {
    let seq: i64 = on_backend!(conn, c => {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM changes").fetch_one(&mut **c).await
    })
    .map_err(StoreError::db("read change feed position"))?;
    Ok(ChangeCursor(seq))
}

impl Transaction {
    /// Announces a change to every subscriber once this transaction commits (the row is
    /// written at commit). The registry's own methods call this; other parts (policies) call it
    /// for their own kinds.
    pub fn record_change(&mut self, kind: ChangeKind, item: &str) -> Result<()> {
        validate::certificate_text("change item", item)?;
        self.push_change(kind, item, now());
        Ok(())
    }

    /// Changes after `from`, oldest first, at most `limit`.
    pub async fn changes_since(&mut self, from: ChangeCursor, limit: u32) -> Result<Vec<Change>> {
        since(&mut self.connection(), from, limit).await
    }
}

impl Store {
    /// Changes after `from`, oldest first, at most `limit` (1..=10,000).
    pub async fn changes_since(&self, from: ChangeCursor, limit: u32) -> Result<Vec<Change>> {
        since(&mut self.acquire().await?.connection(), from, limit).await
    }

    /// The current end of the feed. Take it *before* loading state (e.g. the revoked set), then
    /// subscribe from it: nothing committed after the load is missed (a change committed
    /// between the two may be seen twice; consumers re-read the named item, so that is harmless).
    pub async fn change_cursor_now(&self) -> Result<ChangeCursor> {
        cursor_now(&mut self.acquire().await?.connection()).await
    }

    /// Follows the feed from `from`. On PostgreSQL this holds one extra connection for LISTEN.
    pub async fn subscribe_changes(&self, from: ChangeCursor) -> Result<ChangeSubscription> {
        let mut subscription = ChangeSubscription {
            store: self.clone(),
            cursor: from,
            buffer: VecDeque::new(),
            local: self.inner.local_changes.subscribe(),
            listener: None,
        };
        subscription.listen().await?;
        Ok(subscription)
    }
}

/// A live view of the change feed; see the module documentation.
pub struct ChangeSubscription {
    store: Store,
    cursor: ChangeCursor,
    buffer: VecDeque<Change>,
    local: watch::Receiver<u64>,
    listener: Option<PgListener>,
}

impl std::fmt::Debug for ChangeSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeSubscription")
            .field("cursor", &self.cursor)
            .field("listening", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

impl ChangeSubscription {
    async fn listen(&mut self) -> Result<()> {
        if let Pools::Postgres(pool) = &self.store.inner.pools {
            let op = "listen for changes";
            let mut listener = PgListener::connect_with(pool)
                .await
                .map_err(StoreError::db(op))?;
            listener
                .listen(NOTIFY_CHANNEL)
                .await
                .map_err(StoreError::db(op))?;
            self.listener = Some(listener);
        }
        Ok(())
    }

    /// The position after the last change returned by [`ChangeSubscription::next`].
    pub fn cursor(&self) -> ChangeCursor {
        self.cursor
    }

    /// Waits for and returns the next change. Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Result<Change> {
        loop {
            if let Some(change) = self.buffer.pop_front() {
                self.cursor = change.cursor;
                return Ok(change);
            }
            // Mark local wake-ups seen *before* reading, so a commit racing with the read
            // still wakes the wait below.
            self.local.borrow_and_update();
            let batch = self.store.changes_since(self.cursor, BATCH).await?;
            if batch.is_empty() {
                self.wait().await;
            } else {
                self.buffer.extend(batch);
            }
        }
    }

    async fn wait(&mut self) {
        let interval = self.store.options().poll_interval();
        let listener = &mut self.listener;
        let notified = async {
            match listener {
                Some(l) => l.recv().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.local.changed() => {}
            ok = notified => {
                if !ok {
                    // The listener reconnects by itself on its next recv; polling covers the gap,
                    // and waiting here keeps a dead server from turning this into a busy loop.
                    tokio::time::sleep(interval).await;
                }
            }
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
