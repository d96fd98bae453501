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
//!
//! Forward compatibility: a newer ironroot may add change kinds (OTA, defender ...) while older
//! replicas still follow the same feed during a rolling upgrade. A row whose kind this version
//! does not know is skipped — the cursor moves past it, it is counted
//! ([`Store::unknown_changes_skipped`], [`ChangeSubscription::unknown_skipped`]) and logged
//! once per kind per process — and the known changes after it are delivered as usual. An
//! older follower ignores only what it could not act on anyway.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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
        /// Every live session of a device must be closed now (item: device id); written by
        /// incident containment so a quarantined device reconnects under the quarantine policy.
        SessionCut = "session_cut",
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

/// Change rows of kinds this version does not know: how many were skipped, and which kinds
/// were already logged (once per kind per process).
#[derive(Debug, Default)]
pub(crate) struct UnknownKinds {
    skipped: AtomicU64,
    logged: Mutex<HashSet<String>>,
}

impl UnknownKinds {
    fn skip(&self, seq: i64, kind: &str) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() < 64 && logged.insert(kind.to_owned()) {
            log::warn!(
                "change feed: skipping changes of unknown kind {kind:?} (first at seq {seq}); \
                 written by a newer ironroot, upgrade this one to act on them"
            );
        }
    }
}

/// One read of the feed: the known changes, and the position after the last row read (known
/// or not), so a reader can move past rows it skipped.
struct Read {
    changes: Vec<Change>,
    skipped: u64,
    end: Option<ChangeCursor>,
}

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

async fn since(
    conn: &mut Connection<'_>,
    unknown: &UnknownKinds,
    from: ChangeCursor,
    limit: u32,
) -> Result<Read> {
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
    let mut read = Read {
        changes: Vec::with_capacity(rows.len()),
        skipped: 0,
        end: rows.last().map(|r| ChangeCursor(r.0)),
    };
    for (seq, kind, item, at) in rows {
        match ChangeKind::from_name(&kind) {
            Some(kind) => read.changes.push(Change {
                kind,
                item,
                at,
                cursor: ChangeCursor(seq),
            }),
            None => {
                unknown.skip(seq, &kind);
                read.skipped += 1;
            }
        }
    }
    Ok(read)
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

    /// Changes after `from`, oldest first, from at most `limit` rows; rows of unknown kinds
    /// are left out (see the module documentation).
    pub async fn changes_since(&mut self, from: ChangeCursor, limit: u32) -> Result<Vec<Change>> {
        let inner = std::sync::Arc::clone(&self.store.inner);
        Ok(
            since(&mut self.connection(), &inner.unknown_kinds, from, limit)
                .await?
                .changes,
        )
    }
}

impl Store {
    /// Changes after `from`, oldest first, from at most `limit` rows (1..=10,000); rows of
    /// kinds this version does not know are left out and counted (see the module
    /// documentation). To follow the feed, use [`Store::subscribe_changes`], which also moves
    /// past such rows.
    pub async fn changes_since(&self, from: ChangeCursor, limit: u32) -> Result<Vec<Change>> {
        Ok(self.read_changes(from, limit).await?.changes)
    }

    async fn read_changes(&self, from: ChangeCursor, limit: u32) -> Result<Read> {
        let mut pooled = self.acquire().await?;
        since(
            &mut pooled.connection(),
            &self.inner.unknown_kinds,
            from,
            limit,
        )
        .await
    }

    /// How many change rows of kinds this version does not know (written by a newer
    /// ironroot) this process has skipped so far, over all readers of this store.
    pub fn unknown_changes_skipped(&self) -> u64 {
        self.inner.unknown_kinds.skipped.load(Ordering::Relaxed)
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
            read_end: from,
            unknown_skipped: 0,
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
    /// The position after the last row read, including skipped rows of unknown kinds.
    read_end: ChangeCursor,
    unknown_skipped: u64,
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

    /// The position after the last change returned by [`ChangeSubscription::next`] (or after
    /// rows of unknown kinds skipped since).
    pub fn cursor(&self) -> ChangeCursor {
        self.cursor
    }

    /// How many rows of kinds this version does not know this subscription skipped.
    pub fn unknown_skipped(&self) -> u64 {
        self.unknown_skipped
    }

    /// Waits for and returns the next change of a known kind (rows of unknown kinds are
    /// skipped). Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Result<Change> {
        loop {
            if let Some(change) = self.buffer.pop_front() {
                self.cursor = change.cursor;
                return Ok(change);
            }
            // Everything buffered was delivered: move past skipped rows too.
            self.cursor = self.cursor.max(self.read_end);
            // Mark local wake-ups seen *before* reading, so a commit racing with the read
            // still wakes the wait below.
            self.local.borrow_and_update();
            let read = self.store.read_changes(self.cursor, BATCH).await?;
            self.unknown_skipped += read.skipped;
            match read.end {
                None => self.wait().await,
                Some(end) => {
                    self.read_end = end;
                    self.buffer.extend(read.changes);
                }
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
