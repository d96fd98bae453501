//! Upgrading a populated registry across migration 0600 (the `in_repair` state): a database
//! migrated by the previous version, holding devices, groups, attributes, certificates and boot
//! reports, opens with this version and keeps every row — on SQLite, where the `devices` table
//! is rebuilt and dropping it would cascade into `report_boot`, and on PostgreSQL.

use std::borrow::Cow;
use std::str::FromStr;

use ironroot_store::sqlx::migrate::{Migration, MigrationType, Migrator};
use ironroot_store::sqlx::{
    self, AssertSqlSafe, SqlSafeStr, postgres::PgPoolOptions, sqlite::SqliteConnectOptions,
};
use ironroot_store::{DeviceState, Store, sqlx::sqlite::SqlitePoolOptions};
use ironroot_testkit::pg;

/// Every migration of `backend` before 0600, read from this crate's directory.
fn migrations_before_0600(backend: &str) -> Migrator {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let list = files
        .into_iter()
        .filter_map(|path| {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let (version, description) = stem.split_once('_').unwrap();
            let version: i64 = version.parse().unwrap();
            (version < 600).then(|| {
                Migration::new(
                    version,
                    Cow::Owned(description.replace('_', " ")),
                    MigrationType::Simple,
                    AssertSqlSafe(std::fs::read_to_string(&path).unwrap()).into_sql_str(),
                    false,
                )
            })
        })
        .collect();
    Migrator::with_migrations(list)
}

/// The rows an older ironroot wrote (same SQL on both backends).
const OLD_ROWS: &[&str] = &[
    "INSERT INTO devices (id, state, owner, created_at, updated_at) VALUES \
     ('old-1', 'active', 'alice', 1, 2), ('old-2', 'decommissioned', NULL, 1, 3)",
    "INSERT INTO groups (name, created_at) VALUES ('line-a', 1)",
    "INSERT INTO device_groups (device_id, group_name) VALUES ('old-1', 'line-a')",
    "INSERT INTO device_attributes (device_id, key, value) VALUES ('old-1', 'site', 'lyon')",
    "INSERT INTO report_boot (device_id, reported_at, firmware_version, security_counter, pcr, \
     trial, refused, report) VALUES ('old-1', 5, '1.2.0', 3, 'ab', 0, 0, '{}')",
];

/// What this version must find after the upgrade.
async fn check_upgraded(store: &Store) {
    let d = store.device("old-1").await.unwrap();
    assert_eq!(d.state, DeviceState::Active);
    assert_eq!(d.owner.as_deref(), Some("alice"));
    assert_eq!(d.groups, ["line-a"]);
    assert_eq!(d.attributes["site"], "lyon");
    assert_eq!(
        store.device("old-2").await.unwrap().state,
        DeviceState::Decommissioned
    );
    let boot = store.boot_report("old-1").await.unwrap();
    assert_eq!(
        boot.expect("the boot report survived the table rebuild")
            .firmware_version
            .as_deref(),
        Some("1.2.0")
    );
    // The new state is accepted by the schema now, and foreign keys still hold.
    store
        .set_device_state("old-1", DeviceState::InRepair)
        .await
        .unwrap();
    assert_eq!(
        store.device("old-1").await.unwrap().state,
        DeviceState::InRepair
    );
    assert!(
        store
            .add_device_to_group("no-such-device", "line-a")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_populated_sqlite_registry_upgrades_to_in_repair_keeping_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let connect = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await
        .unwrap();
    migrations_before_0600("sqlite").run(&pool).await.unwrap();
    for sql in OLD_ROWS {
        sqlx::query(*sql).execute(&pool).await.unwrap();
    }
    // The old schema refuses the new state: the upgrade is what makes it legal.
    assert!(
        sqlx::query("UPDATE devices SET state = 'in_repair' WHERE id = 'old-1'")
            .execute(&pool)
            .await
            .is_err()
    );
    pool.close().await;

    let store = Store::open(&url).await.unwrap();
    assert!(store.applied_migrations().await.unwrap().contains(&600));
    check_upgraded(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_populated_postgres_registry_upgrades_to_in_repair_keeping_every_row() {
    let (url, name) = pg::create_database("ironroot_upgrade").await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    migrations_before_0600("postgres").run(&pool).await.unwrap();
    for sql in OLD_ROWS {
        sqlx::query(*sql).execute(&pool).await.unwrap();
    }
    assert!(
        sqlx::query("UPDATE devices SET state = 'in_repair' WHERE id = 'old-1'")
            .execute(&pool)
            .await
            .is_err()
    );
    pool.close().await;

    let store = Store::open(&url).await.unwrap();
    assert!(store.applied_migrations().await.unwrap().contains(&600));
    check_upgraded(&store).await;
    store.close().await;
    pg::drop_database(&name).await;
}
