//! One connection, of either backend, and the macro that runs the same code on both.
//!
//! Every repository operation is written once, with `$1, $2, ...` placeholders (SQLite accepts
//! them too), and [`on_backend!`](crate::on_backend) compiles the body twice: once against a
//! `SqliteConnection`, once against a `PgConnection`. There is no `dyn` and no generic bound
//! soup, and another crate (the audit log) can use the same macro on a [`Connection`] taken from
//! a [`crate::Transaction`] to run its own queries inside the registry's transaction.

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnection, SqliteRow};

/// A borrowed database connection of either backend (possibly inside a transaction).
///
/// Deliberately not `#[non_exhaustive]`: callers match on it (usually through
/// [`on_backend!`](crate::on_backend)), and a third backend would be a breaking change anyway.
#[derive(Debug)]
pub enum Connection<'c> {
    /// The embedded SQLite database.
    Sqlite(&'c mut SqliteConnection),
    /// A PostgreSQL server.
    Postgres(&'c mut PgConnection),
}

/// Runs the same expression on whichever backend `$conn` holds.
///
/// `$conn` is a `&mut Connection` (or a `Connection` by value); inside `$body`, `$c` is the
/// backend's connection (`&mut &mut SqliteConnection` or `&mut &mut PgConnection` when matching
/// a reference, so pass `&mut **$c` as the executor). The body is compiled once per backend, so
/// it must only use SQL and types both understand.
///
/// ```ignore
/// let n: i64 = ironroot_store::on_backend!(&mut conn, c => {
///     sqlx::query_scalar("SELECT count(*) FROM devices").fetch_one(&mut **c).await
/// })?;
/// ```
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::Connection::Sqlite($c) => $body,
            $crate::Connection::Postgres($c) => $body,
        }
    };
}

/// Typed column access shared by both row types, so row mapping is written once.
pub(crate) trait RowExt {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, sqlx::Error>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
        }
    };
}

impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);
