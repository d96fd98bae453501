//! [`SqlStorage`]: the log in the registry's database (SQLite or PostgreSQL), on the same pool
//! as every other part of ironroot.
//!
//! ```text
//!  AppendBatch ──► store.begin()   (SQLite: BEGIN IMMEDIATE on the single writer connection;
//!                                   PostgreSQL: LOCK TABLE audit_checkpoints IN EXCLUSIVE MODE)
//!                  SELECT max(size) FROM audit_checkpoints   ≠ first_index → Conflict, rollback
//!                  INSERT audit_leaves    (SQLite: 256-row VALUES statements; PostgreSQL: UNNEST)
//!                  UPSERT audit_tiles     (full tiles completed + the partial right-edge tiles)
//!                  INSERT audit_checkpoints (the batch's signed checkpoint)
//!                  COMMIT ──► Ok (durable: WAL + synchronous=FULL / synchronous_commit=on)
//! ```
//!
//! The tables (`audit_leaves`, `audit_tiles`, `audit_checkpoints`) come from migration 0100 in
//! `ironroot-store` (range 0100–0199 and prefix `audit_` are reserved for the log). Reads run on
//! pooled connections (SQLite: the reader pool, beside the writer thanks to WAL). All SQL is
//! static: statements are prepared once per connection and reused.

use std::sync::LazyLock;

use ironroot_store::sqlx::{self, AssertSqlSafe, Row as _};
use ironroot_store::{Backend, Connection, Store, on_backend};

use crate::storage::{AppendBatch, CheckpointRow, LogStorage, StorageError, StoredLeaf};
use crate::tile::{Tile, TileId};

/// Rows per multi-row `INSERT` on SQLite, largest first: a batch is cut into statements of
/// these sizes, so a handful of prepared statements serve any batch (SQLite allows 32,766
/// parameters; the largest statement has 768).
const SQLITE_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];
/// Most tiles fetched per query (a proof at 10M entries needs about six).
const TILES_PER_QUERY: usize = 16;

/// `head ($1, $2), ($3, $4), … tail` with `rows` tuples of `columns` parameters.
fn values_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::from(head);
    let mut p = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { " (" } else { ", (" });
        for c in 0..columns {
            p += 1;
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&p.to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// Multi-row leaf inserts for SQLite, one per entry of [`SQLITE_CHUNKS`].
static SQLITE_LEAVES: LazyLock<Vec<String>> = LazyLock::new(|| {
    SQLITE_CHUNKS
        .iter()
        .map(|&n| values_sql("INSERT INTO audit_leaves (idx, data) VALUES", 2, n, ""))
        .collect()
});
/// Multi-row tile upserts for SQLite, one per entry of [`SQLITE_CHUNKS`].
static SQLITE_TILES: LazyLock<Vec<String>> = LazyLock::new(|| {
    SQLITE_CHUNKS
        .iter()
        .map(|&n| {
            values_sql(
                "INSERT INTO audit_tiles (level, idx, data) VALUES",
                3,
                n,
                " ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data",
            )
        })
        .collect()
});

/// Cuts `len` rows into runs of [`SQLITE_CHUNKS`] sizes: (start, statement number, rows).
fn sqlite_runs(len: usize) -> Vec<(usize, usize, usize)> {
    let mut runs = Vec::new();
    let mut at = 0;
    for (k, &n) in SQLITE_CHUNKS.iter().enumerate() {
        while len - at >= n {
            runs.push((at, k, n));
            at += n;
        }
    }
    runs
}

const PG_LEAVES: &str = "INSERT INTO audit_leaves (idx, data) \
                         SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[])";
const PG_TILES: &str = "INSERT INTO audit_tiles (level, idx, data) \
                        SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BYTEA[]) \
                        ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data";
const PG_LOCK: &str = "LOCK TABLE audit_checkpoints IN EXCLUSIVE MODE";
const STORED_SIZE: &str = "SELECT COALESCE(MAX(size), 0) FROM audit_checkpoints";
const INSERT_CHECKPOINT: &str = "INSERT INTO audit_checkpoints (size, note) VALUES ($1, $2)";
const READ_LEAVES: &str = "SELECT idx, data FROM audit_leaves WHERE idx >= $1 AND idx < $2 \
                           ORDER BY idx LIMIT $3";
/// `SELECT … FROM audit_tiles WHERE (level = $1 AND idx = $2) OR …` for 1 to
/// [`TILES_PER_QUERY`] tiles: each term is an index search (SQLite plans a row-value
/// `IN (VALUES …)` as a scan of the table).
static READ_TILES: LazyLock<Vec<String>> = LazyLock::new(|| {
    (1..=TILES_PER_QUERY)
        .map(|n| {
            let terms: Vec<String> = (0..n)
                .map(|k| format!("(level = ${} AND idx = ${})", 2 * k + 1, 2 * k + 2))
                .collect();
            format!(
                "SELECT level, idx, data FROM audit_tiles WHERE {}",
                terms.join(" OR ")
            )
        })
        .collect()
});
const LATEST_CHECKPOINT: &str =
    "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1";
const READ_CHECKPOINTS: &str =
    "SELECT size, note FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT $2";

/// The audit log's tables in an `ironroot-store` database. Cheap to clone (shares the pool).
#[derive(Debug, Clone)]
pub struct SqlStorage {
    store: Store,
}

/// Wraps a store or driver error with what was being done.
fn backend<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
) -> impl FnOnce(E) -> StorageError {
    move |e| StorageError::Backend {
        op,
        source: Box::new(e),
    }
}

/// A stored value that cannot be a valid index (negative, or beyond `i64`).
#[derive(Debug, thiserror::Error)]
#[error("column {column} holds {value}, which is not a valid log position")]
struct BadNumber {
    column: &'static str,
    value: i64,
}

fn to_u64(column: &'static str, value: i64, op: &'static str) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| StorageError::Backend {
        op,
        source: Box::new(BadNumber { column, value }),
    })
}

/// SQL integers are signed 64-bit: positions beyond `i64::MAX` are clamped (no log is that big).
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl SqlStorage {
    /// The log in `store`'s database. The tables exist once the store is open (its migrations
    /// create them).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store's backend.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Inserts the batch's leaves, tiles and checkpoint on `conn` (inside the transaction).
    async fn write(
        &self,
        conn: &mut Connection<'_>,
        batch: &AppendBatch,
    ) -> Result<(), sqlx::Error> {
        let first = to_i64(batch.first_index);
        match conn {
            Connection::Sqlite(c) => {
                for (at, k, n) in sqlite_runs(batch.leaves.len()) {
                    let mut q = sqlx::query(AssertSqlSafe(SQLITE_LEAVES[k].as_str()));
                    for (j, leaf) in batch.leaves[at..at + n].iter().enumerate() {
                        q = q.bind(first + (at + j) as i64).bind(leaf.as_slice());
                    }
                    q.execute(&mut **c).await?;
                }
                for (at, k, n) in sqlite_runs(batch.tiles.len()) {
                    let mut q = sqlx::query(AssertSqlSafe(SQLITE_TILES[k].as_str()));
                    for t in &batch.tiles[at..at + n] {
                        q = q
                            .bind(i64::from(t.id.level))
                            .bind(to_i64(t.id.index))
                            .bind(t.as_bytes());
                    }
                    q.execute(&mut **c).await?;
                }
            }
            Connection::Postgres(c) => {
                let idx: Vec<i64> = (0..batch.leaves.len() as i64).map(|k| first + k).collect();
                sqlx::query(PG_LEAVES)
                    .bind(&idx)
                    .bind(&batch.leaves)
                    .execute(&mut **c)
                    .await?;
                let levels: Vec<i64> = batch.tiles.iter().map(|t| i64::from(t.id.level)).collect();
                let indexes: Vec<i64> = batch.tiles.iter().map(|t| to_i64(t.id.index)).collect();
                let data: Vec<&[u8]> = batch.tiles.iter().map(|t| t.as_bytes()).collect();
                sqlx::query(PG_TILES)
                    .bind(&levels)
                    .bind(&indexes)
                    .bind(&data)
                    .execute(&mut **c)
                    .await?;
            }
        }
        on_backend!(conn, c => {
            sqlx::query(INSERT_CHECKPOINT)
                .bind(to_i64(batch.checkpoint.size))
                .bind(batch.checkpoint.note.as_str())
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

/// Why an SQL batch was refused before writing.
enum AppendFailure {
    Conflict(u64),
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for AppendFailure {
    fn from(e: sqlx::Error) -> Self {
        AppendFailure::Sql(e)
    }
}

impl LogStorage for SqlStorage {
    async fn append(&self, batch: &AppendBatch) -> Result<(), StorageError> {
        let mut tx = self.store.begin().await.map_err(backend("begin append"))?;
        let outcome: Result<(), AppendFailure> = async {
            let mut conn = tx.connection();
            if let Connection::Postgres(c) = &mut conn {
                // Serialises writers (server replicas) on the stored size; readers still run.
                sqlx::query(PG_LOCK).execute(&mut **c).await?;
            }
            let size: i64 = on_backend!(&mut conn, c => {
                sqlx::query_scalar(STORED_SIZE).fetch_one(&mut **c).await
            })?;
            let size = u64::try_from(size).unwrap_or(u64::MAX);
            if size != batch.first_index {
                return Err(AppendFailure::Conflict(size));
            }
            self.write(&mut conn, batch).await?;
            Ok(())
        }
        .await;
        match outcome {
            // Dropping the transaction rolls it back.
            Err(AppendFailure::Conflict(found)) => Err(StorageError::Conflict {
                expected: batch.first_index,
                found,
            }),
            Err(AppendFailure::Sql(e)) => Err(backend("append")(e)),
            Ok(()) => tx.commit().await.map_err(backend("commit append")),
        }
    }

    async fn read_leaves(
        &self,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<Vec<StoredLeaf>, StorageError> {
        let op = "read leaves";
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.store.acquire().await.map_err(backend(op))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Vec<u8>)> = on_backend!(conn.connection(), c => {
            sqlx::query(READ_LEAVES)
                .bind(to_i64(start))
                .bind(to_i64(end))
                .bind(limit)
                .fetch_all(&mut *c)
                .await
                .and_then(|rows| {
                    rows.iter()
                        .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<Vec<u8>, _>(1)?)))
                        .collect()
                })
        })
        .map_err(backend(op))?;
        rows.into_iter()
            .map(|(index, data)| {
                Ok(StoredLeaf {
                    index: to_u64("audit_leaves.idx", index, op)?,
                    data,
                })
            })
            .collect()
    }

    async fn read_tiles(&self, ids: &[TileId]) -> Result<Vec<Tile>, StorageError> {
        let op = "read tiles";
        let mut out = Vec::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(out);
        }
        let mut conn = self.store.acquire().await.map_err(backend(op))?;
        for chunk in ids.chunks(TILES_PER_QUERY) {
            let rows: Vec<(i64, i64, Vec<u8>)> = on_backend!(conn.connection(), c => {
                let mut q = sqlx::query(AssertSqlSafe(READ_TILES[chunk.len() - 1].as_str()));
                for id in chunk {
                    q = q.bind(i64::from(id.level)).bind(to_i64(id.index));
                }
                q.fetch_all(&mut *c).await.and_then(|rows| {
                    rows.iter()
                        .map(|r| {
                            Ok((
                                r.try_get::<i64, _>(0)?,
                                r.try_get::<i64, _>(1)?,
                                r.try_get::<Vec<u8>, _>(2)?,
                            ))
                        })
                        .collect()
                })
            })
            .map_err(backend(op))?;
            for (level, index, data) in rows {
                let level = u8::try_from(level).map_err(|_| StorageError::Backend {
                    op,
                    source: Box::new(BadNumber {
                        column: "audit_tiles.level",
                        value: level,
                    }),
                })?;
                let index = to_u64("audit_tiles.idx", index, op)?;
                out.push(Tile::from_bytes(TileId { level, index }, data)?);
            }
        }
        Ok(out)
    }

    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StorageError> {
        let op = "read latest checkpoint";
        let mut conn = self.store.acquire().await.map_err(backend(op))?;
        let row: Option<(i64, String)> = on_backend!(conn.connection(), c => {
            sqlx::query_as(LATEST_CHECKPOINT).fetch_optional(&mut *c).await
        })
        .map_err(backend(op))?;
        row.map(|(size, note)| {
            Ok(CheckpointRow {
                size: to_u64("audit_checkpoints.size", size, op)?,
                note,
            })
        })
        .transpose()
    }

    async fn read_checkpoints(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<CheckpointRow>, StorageError> {
        let op = "read checkpoints";
        let mut conn = self.store.acquire().await.map_err(backend(op))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String)> = on_backend!(conn.connection(), c => {
            sqlx::query_as(READ_CHECKPOINTS)
                .bind(to_i64(after))
                .bind(limit)
                .fetch_all(&mut *c)
                .await
        })
        .map_err(backend(op))?;
        rows.into_iter()
            .map(|(size, note)| {
                Ok(CheckpointRow {
                    size: to_u64("audit_checkpoints.size", size, op)?,
                    note,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_few_statement_shapes() {
        for len in [0usize, 1, 3, 4, 5, 255, 256, 257, 300, 8192, 8193] {
            let runs = sqlite_runs(len);
            // Contiguous, complete, largest statements first.
            let mut at = 0;
            for &(start, k, n) in &runs {
                assert_eq!(start, at);
                assert_eq!(SQLITE_CHUNKS[k], n);
                at += n;
            }
            assert_eq!(at, len);
            assert!(runs.windows(2).all(|w| w[0].2 >= w[1].2));
        }
        // 8191 rows: 31 × 256, then 3 each of 64, 16, 4 and 1.
        assert!(sqlite_runs(8191).len() <= 31 + 3 + 3 + 3 + 3);
        assert_eq!(values_sql("X", 2, 2, " Y"), "X ($1, $2), ($3, $4) Y");
        assert_eq!(
            READ_TILES[1],
            "SELECT level, idx, data FROM audit_tiles WHERE (level = $1 AND idx = $2) OR \
             (level = $3 AND idx = $4)"
        );
    }
}
