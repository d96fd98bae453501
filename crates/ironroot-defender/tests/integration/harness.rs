//! A real installation in a temp data directory: CA (fast KDF), registry (SQLite in the data
//! directory, or a throwaway PostgreSQL database), audit log, identity and fleet services.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ironroot_audit::Audit;
use ironroot_defender::audit::{self, AuditOptions, AuditReport, CheckId, Finding, Snapshot};
use ironroot_fleet::{Fleet, Origin};
use ironroot_identity::{IdentityOptions, IdentityService, IssuePurpose, IssueRequest};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, OnlineKeyBackend,
    OnlineSecrets, Passphrase, Serial,
};
use ironroot_store::{
    BootRecord, CertificateKind, DeviceState, NewCertificate, NewDevice, PolicyTarget, Store,
};
use ironroot_testkit::{pg, run_ok, tool};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub const ROOT_PASS: &str = "root passphrase for tests";
const ONLINE_PASS: &str = "online passphrase for tests";

/// One installation.
pub struct Env {
    pub dir: PathBuf,
    pub store: Store,
    pub identity: IdentityService,
    pub fleet: Fleet,
    pub audit: Arc<Audit>,
}

pub fn origin() -> Origin {
    Origin::new("operator:test", "cli")
}

pub fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.as_bytes().to_vec()).unwrap()
}

fn init_ca(dir: &Path, hierarchy: HierarchyPolicy) {
    CaDirectory::new(dir)
        .init(
            InitOptions {
                root_passphrase: passphrase(ROOT_PASS),
                online: Some(OnlineKeyBackend::EncryptedFile(passphrase(ONLINE_PASS))),
                kdf: KdfParams::MINIMUM,
                hierarchy,
                operator: DeviceId::parse("admin").unwrap(),
            },
            OffsetDateTime::now_utc(),
        )
        .unwrap();
}

/// A P-256 CSR for `cn` made by rcgen, and its key.
pub fn csr(cn: &str, key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(key).unwrap().der().to_vec()
}

impl Env {
    /// Issues an operational certificate for `id` from a CSR with `key` through the identity
    /// service (the CA path every front end uses).
    pub async fn issue_with(&self, id: &str, key: &rcgen::KeyPair) -> Serial {
        let issued = self
            .identity
            .issue(IssueRequest {
                device: DeviceId::parse(id).unwrap(),
                csr: csr(id, key),
                actor: "operator:test".into(),
                source: None,
                purpose: IssuePurpose::Manual,
            })
            .await
            .unwrap();
        issued.serial().clone()
    }

    /// Registers `id` in group `line-a` through the fleet service, issues its certificate,
    /// marks it active (as its first MQTT connection does) and stores a fresh boot report.
    pub async fn add_healthy_device(&self, id: &str) -> Serial {
        let mut new = NewDevice::new(id);
        new.groups = vec!["line-a".into()];
        self.fleet.add_device(&origin(), &new).await.unwrap();
        let serial = self
            .issue_with(id, &rcgen::KeyPair::generate().unwrap())
            .await;
        self.store
            .set_device_state(id, DeviceState::Active)
            .await
            .unwrap();
        self.boot_report(id, audit::now()).await;
        serial
    }

    /// Stores a boot report of `id` received at `at`.
    pub async fn boot_report(&self, id: &str, at: i64) {
        self.store
            .record_boot_report(&BootRecord {
                device_id: id.into(),
                reported_at: at,
                firmware_version: Some("1.2.0".into()),
                security_counter: 3,
                pcr: "00".repeat(32),
                trial: false,
                refused: 0,
                report: "{}".into(),
            })
            .await
            .unwrap();
    }

    /// A clean fleet: the built-in device policy stored and attached to `line-a`, and three
    /// healthy devices.
    pub async fn clean_fleet(&self) {
        self.fleet
            .put_policy(
                &origin(),
                "line-a-devices",
                ironroot_policy::builtin::DEFAULT_DEVICE_POLICY_JSON,
            )
            .await
            .unwrap();
        self.fleet
            .attach_policy(
                &origin(),
                "line-a-devices",
                &PolicyTarget::Group("line-a".into()),
            )
            .await
            .unwrap();
        for id in ["sensor-1", "sensor-2", "sensor-3"] {
            self.add_healthy_device(id).await;
        }
    }

    /// The common name of the current intermediate (the registry's issuer column).
    pub fn intermediate_name(&self) -> String {
        self.identity
            .ca()
            .issuing()
            .certificate()
            .common_name()
            .to_owned()
    }

    /// Records `der` (made outside the CA) as an operational certificate of `device`, through
    /// the store API, as an import or a bug elsewhere would.
    pub async fn plant_certificate(&self, device: &str, der: Vec<u8>) -> Serial {
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let serial = Serial::from_hex(&cert.raw_serial_as_string()).unwrap();
        let new = NewCertificate {
            serial: serial.clone(),
            device_id: Some(device.into()),
            kind: CertificateKind::Operational,
            issuer: self.intermediate_name(),
            subject: cert.subject().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            der,
        };
        self.store.record_issued_certificate(&new).await.unwrap();
        serial
    }

    /// Reads the installation and runs the audit at the current time.
    pub async fn audit(&self, options: &AuditOptions) -> AuditReport {
        audit::audit_installation(&self.store, &self.dir, None, options)
            .await
            .unwrap()
    }

    /// The snapshot of the installation.
    pub async fn snapshot(&self) -> Snapshot {
        Snapshot::collect(&self.store, &self.dir, None)
            .await
            .unwrap()
    }
}

/// The findings of `check` in `report`.
pub fn of(report: &AuditReport, check: CheckId) -> Vec<&Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.check == check)
        .collect()
}

/// A self-signed certificate made by `openssl req -x509` with a fresh key from `newkey`
/// (`rsa:1024`, `ec` with `-pkeyopt ec_paramgen_curve:prime192v1`, ...), PEM.
pub fn openssl_cert_pem(dir: &Path, cn: &str, newkey: &[&str], days: u32) -> String {
    let key = dir.join(format!("{}.weak.key", cn.replace(' ', "_")));
    let out = run_ok(
        Command::new(tool("openssl"))
            .args(["req", "-x509", "-nodes", "-newkey"])
            .args(newkey)
            .arg("-keyout")
            .arg(&key)
            .args(["-subj", &format!("/CN={cn}"), "-days", &days.to_string()]),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The same, DER.
pub fn openssl_cert(dir: &Path, cn: &str, newkey: &[&str], days: u32) -> Vec<u8> {
    let pem = openssl_cert_pem(dir, cn, newkey, days);
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    pem.contents
}

/// A self-signed P-256 certificate for `cn` made by rcgen with the given validity, DER.
pub fn rcgen_cert(cn: &str, not_before: i64, not_after: i64, key: &rcgen::KeyPair) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = OffsetDateTime::from_unix_timestamp(not_before).unwrap();
    params.not_after = OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    params.self_signed(key).unwrap().der().to_vec()
}

pub const DAY: i64 = 86_400;

/// Runs `body` on a fresh installation on `db` with the CA `hierarchy`, then cleans up.
pub async fn run_with<F, Fut>(db: Db, hierarchy: HierarchyPolicy, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    init_ca(&dir, hierarchy);
    let (store, pg_db) = match db {
        Db::Sqlite => (Store::open_data_dir(&dir).await.unwrap(), None),
        Db::Postgres => {
            let database = pg::Database::create("ironroot_defender_test").await;
            (Store::open(&database.url).await.unwrap(), Some(database))
        }
    };
    let audit = Arc::new(Audit::open_store(&store, &dir).await.unwrap());
    let secrets = OnlineSecrets {
        passphrase: Some(passphrase(ONLINE_PASS)),
        pkcs11_pin: None,
    };
    let online = CaDirectory::new(&dir)
        .open_online(&secrets, OffsetDateTime::now_utc())
        .unwrap();
    let identity = IdentityService::open(
        online,
        store.clone(),
        audit.clone(),
        IdentityOptions::new(&dir),
    )
    .await
    .unwrap();
    let env = Env {
        dir,
        store: store.clone(),
        fleet: Fleet::new(store.clone(), audit.clone()),
        identity,
        audit,
    };
    let outcome = tokio::spawn(body(env)).await;
    store.close().await;
    drop(pg_db);
    drop(tmp);
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Runs `body` on a fresh installation with the default hierarchy.
pub async fn run_on<F, Fut>(db: Db, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_with(db, HierarchyPolicy::default(), body).await
}

/// Declares `<name>::sqlite` and `<name>::postgres` tests for each `async fn name(Env)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    crate::harness::run_on(crate::harness::Db::Sqlite, super::$name).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    crate::harness::run_on(crate::harness::Db::Postgres, super::$name).await
                }
            }
        )*
    };
}
pub(crate) use both_backends;

/// Declares a SQLite test for each `async fn name(Env)`.
macro_rules! sqlite {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    crate::harness::run_on(crate::harness::Db::Sqlite, super::$name).await
                }
            }
        )*
    };
}
pub(crate) use sqlite;
