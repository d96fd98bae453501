//! One test body, two databases: a fresh SQLite data directory and a fresh PostgreSQL database
//! (created on `$IRONROOT_TEST_PG`, dropped afterwards), each with a real CA in a temp data
//! directory and the real audit log. PostgreSQL being unreachable FAILS the test.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ironroot_audit::{Audit, AuditDir, Event, LogStorage as _, SqlStorage, VerifyOptions};
use ironroot_identity::{IdentityOptions, IdentityService, IssuePurpose, IssueRequest};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, OnlineCa, OnlineKeyBackend,
    OnlineSecrets, Passphrase,
};
use ironroot_store::{NewDevice, Store};
use ironroot_testkit::pg;
use ironroot_testkit::{run, run_ok, tool};
use time::OffsetDateTime;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

const ROOT_PASS: &str = "root passphrase for tests";
const ONLINE_PASS: &str = "online passphrase for tests";

/// A CA, a registry, an audit log and the service on them.
pub struct Env {
    pub dir: PathBuf,
    pub url: String,
    pub store: Store,
    pub service: IdentityService,
    pub backend: Db,
}

pub fn secrets() -> OnlineSecrets {
    OnlineSecrets {
        passphrase: Some(Passphrase::new(ONLINE_PASS.as_bytes().to_vec()).unwrap()),
        pkcs11_pin: None,
    }
}

/// Initialises a CA in `dir` (fast KDF).
pub fn init_ca(dir: &Path) {
    CaDirectory::new(dir)
        .init(
            InitOptions {
                root_passphrase: Passphrase::new(ROOT_PASS.as_bytes().to_vec()).unwrap(),
                online: Some(OnlineKeyBackend::EncryptedFile(
                    Passphrase::new(ONLINE_PASS.as_bytes().to_vec()).unwrap(),
                )),
                kdf: KdfParams::MINIMUM,
                hierarchy: HierarchyPolicy::default(),
                operator: DeviceId::parse("admin").unwrap(),
            },
            OffsetDateTime::now_utc(),
        )
        .unwrap();
}

pub fn online(dir: &Path) -> OnlineCa {
    CaDirectory::new(dir)
        .open_online(&secrets(), OffsetDateTime::now_utc())
        .unwrap()
}

impl Env {
    /// Another service (as another replica or process would run) on the same database and CA.
    pub async fn open_again(&self) -> IdentityService {
        let store = Store::open(&self.url).await.unwrap();
        open_service(&self.dir, store).await
    }

    /// Registers a device (manufactured).
    pub async fn add_device(&self, id: &str) {
        self.store.add_device(&NewDevice::new(id)).await.unwrap();
    }

    /// Every audit event, oldest first.
    pub async fn audit_events(&self) -> Vec<Event> {
        audit_events(&self.store).await
    }

    /// Checks the audit log end to end with its own verifier key.
    pub async fn verify_audit(&self) -> u64 {
        let verifier = AuditDir::new(&self.dir).load_verifier().unwrap();
        ironroot_audit::verify_log(
            Arc::new(SqlStorage::new(self.store.clone())),
            &verifier,
            &VerifyOptions::default(),
        )
        .await
        .expect("audit log verifies")
        .size
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Issues from an openssl-made P-256 CSR with CN=id; returns the result and the key path.
    pub async fn issue(
        &self,
        id: &str,
    ) -> (
        Result<ironroot_identity::Issued, ironroot_identity::IdentityError>,
        PathBuf,
    ) {
        let key = self.path(&format!("{id}.key.pem"));
        let csr = openssl_csr(&key, &format!("/CN={id}"), &[], "P-256");
        (self.service.issue(request(id, csr)).await, key)
    }
}

pub fn request(id: &str, csr: Vec<u8>) -> IssueRequest {
    IssueRequest {
        device: DeviceId::parse(id).unwrap(),
        csr,
        actor: "operator:test".into(),
        source: Some("192.0.2.7".parse().unwrap()),
        purpose: IssuePurpose::Manual,
    }
}

pub async fn audit_events(store: &Store) -> Vec<Event> {
    SqlStorage::new(store.clone())
        .read_leaves(0, u64::MAX, 1_000_000)
        .await
        .unwrap()
        .iter()
        .map(|l| Event::decode(&l.data).unwrap())
        .collect()
}

pub async fn open_service(dir: &Path, store: Store) -> IdentityService {
    let audit = Arc::new(Audit::open_store(&store, dir).await.unwrap());
    IdentityService::open(online(dir), store, audit, IdentityOptions::new(dir))
        .await
        .unwrap()
}

/// `openssl req` CSR with a fresh key on `curve` (or "RSA"); the key is written to `key`.
pub fn openssl_csr(key: &Path, subj: &str, addext: &[&str], curve: &str) -> Vec<u8> {
    let mut cmd = Command::new(tool("openssl"));
    cmd.args(["req", "-new", "-nodes", "-keyout"]).arg(key);
    if curve == "RSA" {
        cmd.args(["-newkey", "rsa:2048"]);
    } else {
        cmd.args(["-newkey", "ec", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}"));
    }
    cmd.args(["-subj", subj, "-sha256"]);
    for ext in addext {
        cmd.args(["-addext", ext]);
    }
    run_ok(&mut cmd).stdout
}

/// `openssl verify -CAfile chain -crl_check -CRLfile crl leaf`: (success, output).
pub fn openssl_verify(chain: &Path, crl: &Path, leaf: &Path) -> (bool, String) {
    let out = run(Command::new(tool("openssl"))
        .arg("verify")
        .arg("-CAfile")
        .arg(chain)
        .arg("-crl_check")
        .arg("-CRLfile")
        .arg(crl)
        .arg(leaf));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn openssl_text(cert: &Path) -> String {
    let out = run_ok(
        Command::new(tool("openssl"))
            .args(["x509", "-noout", "-text", "-in"])
            .arg(cert),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `body` on a fresh environment of `db`, cleans up, and re-raises the body's panic.
pub async fn run_on<F, Fut>(db: Db, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    init_ca(&dir);
    let (url, pg_name) = match db {
        Db::Sqlite => (
            format!(
                "sqlite://{}",
                dir.join(ironroot_store::DATABASE_FILE).display()
            ),
            None,
        ),
        Db::Postgres => {
            let (url, name) = pg::create_database("ironroot_identity_test").await;
            (url, Some(name))
        }
    };
    let store = Store::open(&url).await.unwrap();
    let service = open_service(&dir, store.clone()).await;
    let env = Env {
        dir,
        url,
        store: store.clone(),
        service,
        backend: db,
    };
    let outcome = tokio::spawn(body(env)).await;
    store.close().await;
    if let Some(name) = pg_name {
        pg::drop_database(&name).await;
    }
    drop(tmp);
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
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
