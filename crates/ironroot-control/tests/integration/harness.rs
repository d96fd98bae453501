//! A data directory with a CA, a registry and an audit log, a running MqttPlane, device
//! certificates from openssl CSRs, and the real MQTT clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironroot_audit::storage::LogStorage;
use ironroot_audit::{Audit, Event, SqlStorage};
use ironroot_control::{MqttPlane, MqttPlaneOptions, TlsIdentity};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, IssuancePolicy, KdfParams,
    OnlineKeyBackend, OnlineSecrets, Passphrase,
};
use ironroot_store::{CertificateKind, DeviceState, NewCertificate, NewDevice, Store};
use ironroot_testkit::mqtt::ClientTls;
use ironroot_testkit::pg;
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct Node {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub url: String,
    pub plane: Option<MqttPlane>,
    pg_name: Option<String>,
}

pub struct DeviceFiles {
    pub id: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial: String,
}

const PASS: &str = "correct horse battery staple";

impl Node {
    /// A data directory with a CA and registry on `db`, and a running plane.
    pub async fn start(db: Db) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let ca = CaDirectory::new(dir.path());
        ca.init(
            InitOptions {
                root_passphrase: Passphrase::new(PASS.as_bytes().to_vec()).unwrap(),
                online: Some(OnlineKeyBackend::EncryptedFile(
                    Passphrase::new(PASS.as_bytes().to_vec()).unwrap(),
                )),
                kdf: KdfParams::MINIMUM,
                hierarchy: HierarchyPolicy::default(),
                operator: DeviceId::parse("admin").unwrap(),
            },
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let (url, pg_name) = match db {
            Db::Sqlite => (
                format!("sqlite://{}", dir.path().join("ironroot.db").display()),
                None,
            ),
            Db::Postgres => {
                let (url, name) = pg::create_database("ironroot_control").await;
                (url, Some(name))
            }
        };
        let store = match db {
            Db::Sqlite => Store::open_data_dir(dir.path()).await.unwrap(),
            Db::Postgres => Store::open(&url).await.unwrap(),
        };
        let mut node = Node {
            dir,
            store,
            url,
            plane: None,
            pg_name,
        };
        node.start_plane().await;
        node
    }

    pub async fn start_plane(&mut self) {
        let ca = CaDirectory::new(self.dir.path());
        let online = ca
            .open_online(
                &OnlineSecrets {
                    passphrase: Some(Passphrase::new(PASS.as_bytes().to_vec()).unwrap()),
                    pkcs11_pin: None,
                },
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        let tls = TlsIdentity::issue(
            &online,
            &["localhost".into(), "127.0.0.1".into()],
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let audit = Arc::new(
            Audit::open_store(&self.store, self.dir.path())
                .await
                .unwrap(),
        );
        let opts = MqttPlaneOptions::new(
            self.store.clone(),
            audit,
            tls,
            "127.0.0.1:0".parse().unwrap(),
        );
        self.plane = Some(MqttPlane::start(opts).await.unwrap());
    }

    pub fn plane(&self) -> &MqttPlane {
        self.plane.as_ref().unwrap()
    }

    pub fn port(&self) -> u16 {
        self.plane().mqtt_addr().port()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("pki/root.crt.pem")
    }

    /// Registers `id` (active) and issues its certificate from an openssl-made key and CSR.
    pub async fn device(&self, id: &str) -> DeviceFiles {
        let files = issue_with_openssl(self.dir.path(), id);
        let mut new = NewDevice::new(id);
        new.state = DeviceState::Provisioned;
        if self.store.device(id).await.is_err() {
            self.store.add_device(&new).await.unwrap();
            self.store
                .set_device_state(id, DeviceState::Active)
                .await
                .unwrap();
        }
        let der = std::fs::read(&files.cert).unwrap();
        let der = rustls_pemfile_der(&der);
        self.store
            .record_issued_certificate(&NewCertificate {
                serial: ironroot_pki::Serial::from_hex(&files.serial).unwrap(),
                der,
                device_id: Some(id.to_owned()),
                kind: CertificateKind::Operational,
                issuer: "ironroot Intermediate CA G1".into(),
                subject: format!("CN={id}"),
                not_before: 0,
                not_after: 4_000_000_000,
            })
            .await
            .unwrap();
        files
    }

    /// Every audit event recorded so far.
    pub async fn audit_events(&self) -> Vec<Event> {
        let storage = SqlStorage::new(self.store.clone());
        storage
            .read_leaves(0, u64::MAX, 100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|l| Event::decode(&l.data).unwrap())
            .collect()
    }

    /// Waits (≤ 5 s) for an audit event matching `pred`.
    pub async fn wait_audit(&self, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(e) = self.audit_events().await.into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no matching audit event; have: {:#?}",
                self.audit_events().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.plane.take() {
            p.shutdown().await;
        }
        self.store.close().await;
        if let Some(name) = self.pg_name.take() {
            pg::drop_database(&name).await;
        }
    }
}

fn rustls_pemfile_der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

/// openssl makes the key and CSR; the online CA of the data directory issues the certificate.
pub fn issue_with_openssl(data_dir: &Path, id: &str) -> DeviceFiles {
    let out = data_dir.join("clients");
    std::fs::create_dir_all(&out).unwrap();
    let key = out.join(format!("{id}.key"));
    let csr = out.join(format!("{id}.csr"));
    let cert = out.join(format!("{id}.pem"));
    let openssl = ironroot_testkit::tool("openssl");
    ironroot_testkit::run_ok(
        Command::new(&openssl)
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &format!("/CN={id}")]),
    );
    let ca = CaDirectory::new(data_dir);
    let online = ca
        .open_online(
            &OnlineSecrets {
                passphrase: Some(Passphrase::new(PASS.as_bytes().to_vec()).unwrap()),
                pkcs11_pin: None,
            },
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let issued = online
        .issuing()
        .issue_device_from_csr(
            &std::fs::read(&csr).unwrap(),
            &DeviceId::parse(id).unwrap(),
            &IssuancePolicy::default(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    std::fs::write(&cert, issued.pem()).unwrap();
    DeviceFiles {
        id: id.to_owned(),
        cert,
        key,
        serial: issued.serial().to_string(),
    }
}

pub use ironroot_testkit::mqtt::{Paho, evs};

fn tls<'a>(ca: &'a Path, d: &'a DeviceFiles) -> ClientTls<'a> {
    ClientTls {
        ca_file: ca,
        cert: &d.cert,
        key: &d.key,
    }
}

/// `mosquitto_pub`/`mosquitto_sub` with a device certificate (the one driver in
/// ironroot-testkit).
pub fn mosquitto(tool: &str, node: &Node, d: &DeviceFiles, client_id: &str, v5: bool) -> Command {
    let ca = node.ca_file();
    ironroot_testkit::mqtt::mosquitto(tool, node.port(), tls(&ca, d), client_id, v5)
}

pub struct Out {
    pub code: Option<i32>,
    pub text: String,
}

pub fn run(mut cmd: Command) -> Out {
    let out = ironroot_testkit::run(&mut cmd);
    Out {
        code: out.status.code(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A paho driver spec for client `id` with the certificate of `d`.
pub fn paho_spec(node: &Node, d: &DeviceFiles, id: &str, protocol: u8, steps: Value) -> Value {
    let ca = node.ca_file();
    ironroot_testkit::mqtt::paho_spec(node.port(), tls(&ca, d), id, protocol, steps)
}

/// Runs the store-writer helper (a separate process) and returns the commit time.
pub fn writer(url: &str, args: &[&str]) -> std::time::SystemTime {
    let out = ironroot_testkit::run_ok(
        Command::new(env!("CARGO_BIN_EXE_ironroot-control-store-writer"))
            .arg(url)
            .args(args),
    );
    let nanos: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    std::time::UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// Declares `<name>::sqlite` and `<name>::postgres` tests for each `async fn name(Db)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::harness::Db::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::harness::Db::Postgres).await
                }
            }
        )*
    };
}
pub(crate) use both_backends;
