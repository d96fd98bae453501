//! Throwaway PostgreSQL databases (feature `pg`): one per test, on the server named by
//! `IRONROOT_TEST_PG`. A test that needs PostgreSQL fails loudly when it is unreachable — it
//! never skips.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};

/// The default admin URL: the local server `.ci/run` starts.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The admin URL: `$IRONROOT_TEST_PG`, else [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var("IRONROOT_TEST_PG").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A connection to the admin database; panics with the way to fix it when unreachable.
pub async fn admin() -> PgConnection {
    let url = admin_url();
    PgConnection::connect(&url).await.unwrap_or_else(|err| {
        panic!(
            "PostgreSQL is required for this test but {url} is unreachable: {err}\n\
             start it (or set IRONROOT_TEST_PG to a reachable server) — `bash .ci/run` does both"
        )
    })
}

/// `admin_url` with its database name replaced by `name` (query string kept).
pub fn with_database(admin_url: &str, name: &str) -> String {
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

/// A database name no other test (in this or another process) uses: `prefix`, process id,
/// clock nanoseconds and a counter. `prefix` must be a plain SQL identifier.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates an empty database named `unique_name(prefix)`; returns its URL and name.
pub async fn create_database(prefix: &str) -> (String, String) {
    let name = unique_name(prefix);
    admin()
        .await
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create throwaway database");
    (with_database(&admin_url(), &name), name)
}

/// Drops the database `name`, closing its remaining connections.
pub async fn drop_database(name: &str) {
    admin()
        .await
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .expect("drop throwaway database");
}

/// A throwaway database, dropped (even when the test panics) when this value is dropped.
pub struct Database {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl Database {
    /// Creates an empty database named `unique_name(prefix)`.
    pub async fn create(prefix: &str) -> Self {
        let (url, name) = create_database(prefix).await;
        Database { name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Drop runs outside async code (and maybe during a panic): use a thread of its own.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime")
                .block_on(async move {
                    admin()
                        .await
                        .execute(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await
                        .map(|_| ())
                })
        })
        .join();
        if !std::thread::panicking() {
            dropped
                .expect("drop thread")
                .expect("drop throwaway database");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn names_are_unique_identifiers() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
}
