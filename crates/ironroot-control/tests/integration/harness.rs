//! A data directory with a CA, a registry and an audit log, a running MqttPlane, device
//! certificates from openssl CSRs, and the real MQTT clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ironroot_audit::storage::LogStorage;
use ironroot_audit::{Audit, Event, SqlStorage};
use ironroot_control::{MqttPlane, MqttPlaneOptions, TlsIdentity};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, IssuancePolicy, KdfParams,
    OnlineKeyBackend, OnlineSecrets, Passphrase,
};
use ironroot_store::{CertificateKind, DeviceState, NewCertificate, NewDevice, Store};
use ironroot_testkit::pg;
use serde_json::{Value, json};
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

/// `mosquitto_pub`/`mosquitto_sub` with a device certificate.
pub fn mosquitto(tool: &str, node: &Node, d: &DeviceFiles, client_id: &str, v5: bool) -> Command {
    let mut cmd = Command::new(ironroot_testkit::tool(tool));
    cmd.args(["-h", "127.0.0.1", "-p", &node.port().to_string()])
        .arg("--cafile")
        .arg(node.ca_file())
        .arg("--cert")
        .arg(&d.cert)
        .arg("--key")
        .arg(&d.key)
        .args([
            "-i",
            client_id,
            "-V",
            if v5 { "mqttv5" } else { "mqttv311" },
        ]);
    cmd
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

// ---------- paho-mqtt ----------

fn driver_path() -> PathBuf {
    // The broker crate's paho-mqtt driver, shared rather than copied.
    static SCRIPT: &str = include_str!("../../../ironroot-broker/tests/integration/paho_driver.py");
    let path =
        std::env::temp_dir().join(format!("ironroot-control-paho-{}.py", std::process::id()));
    if !path.exists() {
        let tmp = path.with_extension(
            format!("{:?}.tmp", std::thread::current().id()).replace(['(', ')'], ""),
        );
        std::fs::write(&tmp, SCRIPT).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

pub fn paho_spec(node: &Node, d: &DeviceFiles, id: &str, protocol: u8, steps: Value) -> Value {
    json!({
        "port": node.port(),
        "ca": node.ca_file(),
        "cert": d.cert,
        "key": d.key,
        "client_id": id,
        "protocol": protocol,
        "steps": steps,
    })
}

/// A running paho driver; its JSON event lines arrive as they happen, with their arrival time.
pub struct Paho {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
    pub seen: Vec<(Instant, Value)>,
}

impl Paho {
    pub fn spawn(spec: &Value) -> Paho {
        let mut child = Command::new(ironroot_testkit::python())
            .arg(driver_path())
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python starts");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send((Instant::now(), v)).is_err()
                {
                    break;
                }
            }
        });
        Paho {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for an event line matching `pred`; returns it with its arrival time.
    pub fn wait(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<(Instant, Value)> {
        if let Some(v) = self.seen.iter().find(|(_, v)| pred(v)) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    let hit = pred(&v.1);
                    self.seen.push(v.clone());
                    if hit {
                        return Some(v);
                    }
                }
                Err(_) => break,
            }
        }
        None
    }

    /// Runs a spec to completion and returns its event lines.
    pub fn run(spec: &Value) -> Vec<Value> {
        let mut p = Paho::spawn(spec);
        assert!(
            p.wait(|v| v["ev"] == "done", Duration::from_secs(30))
                .is_some(),
            "paho driver did not finish: {:?}",
            p.seen
        );
        p.seen.iter().map(|(_, v)| v.clone()).collect()
    }
}

impl Drop for Paho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn evs<'a>(log: &'a [Value], ev: &str) -> Vec<&'a Value> {
    log.iter().filter(|v| v["ev"] == ev).collect()
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
