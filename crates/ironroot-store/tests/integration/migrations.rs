//! Embedded migrations: applied once, forward-only, and a database from a newer or altered
//! schema is refused instead of being used blindly.

use ironroot_store::sqlx::migrate::MigrateError;
use ironroot_store::{Connection, NewDevice, Store, StoreError, known_migrations};

use crate::harness::{Db, TestDb, both_backends};

both_backends!(
    fresh_database_has_every_known_migration,
    reopening_keeps_data_and_applies_nothing,
    database_from_a_newer_ironroot_is_refused,
    altered_migration_is_refused,
);

fn backend(db: &TestDb) -> ironroot_store::Backend {
    match db.backend {
        Db::Sqlite => ironroot_store::Backend::Sqlite,
        Db::Postgres => ironroot_store::Backend::Postgres,
    }
}

/// Runs one of two statements, SQLite's or PostgreSQL's (blob literals differ).
async fn exec(store: &Store, sqlite: &'static str, postgres: &'static str) {
    let mut conn = store.acquire().await.unwrap();
    match conn.connection() {
        Connection::Sqlite(c) => ironroot_store::sqlx::query(sqlite)
            .execute(&mut *c)
            .await
            .map(|_| ()),
        Connection::Postgres(c) => ironroot_store::sqlx::query(postgres)
            .execute(&mut *c)
            .await
            .map(|_| ()),
    }
    .unwrap();
}

async fn reopen_error(db: &TestDb) -> StoreError {
    Store::open_with(&db.url, crate::harness::options())
        .await
        .unwrap_err()
}

async fn fresh_database_has_every_known_migration(db: TestDb) {
    let known: Vec<i64> = known_migrations(backend(&db)).iter().map(|m| m.0).collect();
    assert!(known.contains(&1), "the registry migration is embedded");
    assert_eq!(db.store.applied_migrations().await.unwrap(), known);
    // Both backends know the same versions (every change lands in both directories).
    let sqlite: Vec<i64> = known_migrations(ironroot_store::Backend::Sqlite)
        .iter()
        .map(|m| m.0)
        .collect();
    let postgres: Vec<i64> = known_migrations(ironroot_store::Backend::Postgres)
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(sqlite, postgres);
}

async fn reopening_keeps_data_and_applies_nothing(db: TestDb) {
    db.store.add_device(&NewDevice::new("keep")).await.unwrap();
    let before = db.store.applied_migrations().await.unwrap();
    let again = db.open_again().await;
    assert_eq!(again.applied_migrations().await.unwrap(), before);
    assert_eq!(again.device("keep").await.unwrap().id, "keep");
    again.close().await;
}

async fn database_from_a_newer_ironroot_is_refused(db: TestDb) {
    exec(
        &db.store,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, X'00', 1)",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, '\\x00'::bytea, 1)",
    )
    .await;
    let err = reopen_error(&db).await;
    assert!(
        matches!(err, StoreError::Migrate(MigrateError::VersionMissing(9999))),
        "{err}"
    );
}

async fn altered_migration_is_refused(db: TestDb) {
    exec(
        &db.store,
        "UPDATE _sqlx_migrations SET checksum = X'0102' WHERE version = 1",
        "UPDATE _sqlx_migrations SET checksum = '\\x0102'::bytea WHERE version = 1",
    )
    .await;
    let err = reopen_error(&db).await;
    assert!(
        matches!(err, StoreError::Migrate(MigrateError::VersionMismatch(1))),
        "{err}"
    );
}
