//! `Audit::open_store(&store, data_dir)`: the one call other parts of ironroot use. The key and
//! the witness live in the data directory; the entries in the registry's database.

use std::path::Path;

use ironroot_audit::dir::{KEY_FILE, ORIGIN_PREFIX};
use ironroot_audit::{
    Audit, AuditDir, Event, KeyError, LogStorage, NoteSigner, OpenError, SqlStorage,
};
use ironroot_store::Store;

use crate::backend::{Kind, TestLog};

macro_rules! on_sql_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::backend::{Kind, TestLog};
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(TestLog::new(Kind::Sqlite).await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(TestLog::new(Kind::Postgres).await).await
                }
            }
        )*
    };
}

on_sql_backends!(
    first_open_creates_a_private_key_and_the_witness,
    a_lost_key_is_not_silently_replaced,
    a_key_of_another_log_is_refused,
);

async fn reopen(log: &TestLog) -> Store {
    match log.kind {
        Kind::Sqlite => Store::open_data_dir(log.dir.path()).await.unwrap(),
        _ => Store::open(&log.url()).await.unwrap(),
    }
}

fn data_dir(log: &TestLog) -> &Path {
    log.dir.path()
}

async fn first_open_creates_a_private_key_and_the_witness(log: TestLog) {
    let audit = Audit::open_store(log.store(), data_dir(&log))
        .await
        .unwrap();
    let r = audit
        .record(
            Event::new(ironroot_audit::EventKind::DeviceAdded, "operator:alice")
                .subject("device", "dev-1"),
        )
        .await
        .unwrap();
    assert_eq!(r.index, 0);
    let dir = AuditDir::new(data_dir(&log));
    assert!(dir.key_path().ends_with(format!("audit/{KEY_FILE}")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.key_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the signing key is private");
    }
    let verifier = dir.load_verifier().unwrap();
    assert_eq!(&verifier, audit.verifier());
    assert!(verifier.name().starts_with(ORIGIN_PREFIX));
    assert_eq!(r.checkpoint.origin, verifier.name());
    let latest = SqlStorage::new(log.store().clone())
        .latest_checkpoint()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dir.witness().read().await.unwrap().unwrap(), latest.note);

    // Another process (another store handle) continues the same log with the same key.
    let store = reopen(&log).await;
    let again = Audit::open_store(&store, data_dir(&log)).await.unwrap();
    assert_eq!(again.verifier(), audit.verifier());
    let r = again
        .record(Event::new(
            ironroot_audit::EventKind::DeviceStateChanged,
            "system",
        ))
        .await
        .unwrap();
    assert_eq!(r.index, 1);
    store.close().await;
}

async fn a_lost_key_is_not_silently_replaced(log: TestLog) {
    let audit = Audit::open_store(log.store(), data_dir(&log))
        .await
        .unwrap();
    audit
        .record(Event::new(ironroot_audit::EventKind::DeviceAdded, "system"))
        .await
        .unwrap();
    let dir = AuditDir::new(data_dir(&log));
    std::fs::remove_file(dir.key_path()).unwrap();
    match Audit::open_store(log.store(), data_dir(&log)).await {
        Err(OpenError::Key(KeyError::LostKey(path))) => assert_eq!(path, dir.key_path()),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!dir.key_path().exists(), "no new key was made");
}

async fn a_key_of_another_log_is_refused(log: TestLog) {
    let audit = Audit::open_store(log.store(), data_dir(&log))
        .await
        .unwrap();
    audit
        .record(Event::new(ironroot_audit::EventKind::DeviceAdded, "system"))
        .await
        .unwrap();
    // Replace both key files with a new key under the same log name.
    let dir = AuditDir::new(data_dir(&log));
    let name = audit.verifier().name().to_owned();
    std::fs::remove_file(dir.key_path()).unwrap();
    std::fs::remove_file(dir.verifier_path()).unwrap();
    dir.create_signer(&name).unwrap();
    let other: NoteSigner = dir.load_signer().unwrap();
    assert_ne!(other.verifier(), audit.verifier());
    match Audit::open_store(log.store(), data_dir(&log)).await {
        Err(OpenError::Checkpoint { size: 1, .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
}
