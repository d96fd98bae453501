//! A data directory with a CA, a node started from a [`NodeConfig`], devices with
//! openssl-made keys and certificates issued by the node's identity service.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ironroot_node::{Node, NodeConfig, NodeSecrets};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, OnlineKeyBackend, Passphrase,
};
use ironroot_server::identity::{IssuePurpose, IssueRequest};
use ironroot_store::{NewDevice, PolicyTarget};
use ironroot_testkit::pg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub const PASS: &str = "correct horse battery staple";

/// Lets a device connect and publish to its own topics.
const DEVICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:Connection.Thing.ThingName}/*"}]}"#;

pub struct TestNode {
    pub dir: tempfile::TempDir,
    /// Registry URL another process opens (`sqlite://…` or `postgres://…`).
    pub url: String,
    pub pg_name: Option<String>,
    pub node: Option<Node>,
}

pub struct DeviceFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial: String,
}

/// A data directory with a CA (fast KDF) and a node configuration for it on `db`.
pub async fn prepare(db: Db) -> (tempfile::TempDir, NodeConfig, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    CaDirectory::new(dir.path())
        .init(
            InitOptions {
                root_passphrase: Passphrase::new(PASS.as_bytes().to_vec()).unwrap(),
                online: Some(OnlineKeyBackend::EncryptedFile(
                    Passphrase::new(PASS.as_bytes().to_vec()).unwrap(),
                )),
                kdf: KdfParams::MINIMUM,
                hierarchy: HierarchyPolicy::default(),
                operator: DeviceId::parse("admin").unwrap(),
            },
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    let mut config = NodeConfig::default();
    config.data_dir = dir.path().to_owned();
    config.api.addr = "127.0.0.1:0".parse().unwrap();
    config.mqtt.addr = "127.0.0.1:0".parse().unwrap();
    let pg_name = match db {
        Db::Sqlite => None,
        Db::Postgres => {
            let (url, name) = pg::create_database("ironroot_node").await;
            config.database_url = Some(url);
            Some(name)
        }
    };
    (dir, config, pg_name)
}

pub fn secrets() -> NodeSecrets {
    let mut s = NodeSecrets::default();
    s.ca_passphrase = Some(zeroize::Zeroizing::new(PASS.as_bytes().to_vec()));
    s
}

impl TestNode {
    pub async fn start(db: Db) -> TestNode {
        let (dir, config, pg_name) = prepare(db).await;
        Self::start_with(dir, config, pg_name).await
    }

    pub async fn start_with(
        dir: tempfile::TempDir,
        config: NodeConfig,
        pg_name: Option<String>,
    ) -> TestNode {
        let url = config
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("ironroot.db").display()));
        let node = Node::start(&config, secrets()).await.unwrap();
        TestNode {
            dir,
            url,
            pg_name,
            node: Some(node),
        }
    }

    pub fn node(&self) -> &Node {
        self.node.as_ref().unwrap()
    }

    pub fn root_ca(&self) -> PathBuf {
        self.dir.path().join("pki/root.crt.pem")
    }

    /// Registers `id`, lets it connect and publish on MQTT, and issues its certificate through
    /// the node's identity service from an openssl-made key and CSR.
    pub async fn device(&self, id: &str) -> DeviceFiles {
        let out = self.dir.path().join("clients");
        std::fs::create_dir_all(&out).unwrap();
        let key = out.join(format!("{id}.key"));
        let csr = out.join(format!("{id}.csr"));
        let cert = out.join(format!("{id}.pem"));
        ironroot_testkit::run_ok(
            Command::new(ironroot_testkit::tool("openssl"))
                .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&csr)
                .args(["-subj", &format!("/CN={id}")]),
        );
        let server = self.node().server();
        server
            .store()
            .add_device(&NewDevice::new(id))
            .await
            .unwrap();
        server
            .store()
            .put_policy("device-self", DEVICE_POLICY)
            .await
            .unwrap();
        server
            .store()
            .attach_policy("device-self", &PolicyTarget::Device(id.into()))
            .await
            .unwrap();
        let issued = server
            .identity()
            .issue(IssueRequest {
                device: DeviceId::parse(id).unwrap(),
                csr: std::fs::read(&csr).unwrap(),
                actor: "operator:test".into(),
                source: None,
                purpose: IssuePurpose::Manual,
            })
            .await
            .unwrap();
        std::fs::write(&cert, issued.pem()).unwrap();
        DeviceFiles {
            cert,
            key,
            serial: issued.serial().to_string(),
        }
    }

    /// Waits until the node's follower applied everything committed so far (≤ 5 s).
    pub async fn caught_up(&self) {
        let target = self
            .node()
            .server()
            .store()
            .change_cursor_now()
            .await
            .unwrap();
        let start = Instant::now();
        while self.node().applied_cursor() < target {
            assert!(start.elapsed() < Duration::from_secs(5), "follower stuck");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// curl, verifying the server against the root CA, presenting `device`'s certificate:
    /// whether the HTTPS request (so the mutual-TLS handshake) succeeded.
    pub fn https_with(&self, device: &DeviceFiles) -> (bool, String) {
        let url = format!("{}/.well-known/est/cacerts", self.node().server().url());
        let out = ironroot_testkit::run(
            Command::new(ironroot_testkit::tool("curl"))
                .args(["--silent", "--show-error", "--fail", "-o", "/dev/null"])
                .arg("--cacert")
                .arg(self.root_ca())
                .arg("--cert")
                .arg(&device.cert)
                .arg("--key")
                .arg(&device.key)
                .arg(url),
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// mosquitto_pub over mutual TLS with `device`'s certificate: whether it connected and
    /// published.
    pub fn mqtt_with(&self, id: &str, device: &DeviceFiles) -> (bool, String) {
        let out = ironroot_testkit::run(
            Command::new(ironroot_testkit::tool("mosquitto_pub"))
                .args(["-h", "127.0.0.1", "-p"])
                .arg(self.node().mqtt_addr().port().to_string())
                .arg("--cafile")
                .arg(self.root_ca())
                .arg("--cert")
                .arg(&device.cert)
                .arg("--key")
                .arg(&device.key)
                .args(["-i", id, "-V", "mqttv311", "-q", "1"])
                .args(["-t", &format!("devices/{id}/telemetry"), "-m", "x"]),
        );
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub async fn stop(mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown().await;
        }
        if let Some(name) = self.pg_name.take() {
            pg::drop_database(&name).await;
        }
    }
}

/// Runs the registry writer (a separate process) with `args`.
pub fn writer(url: &str, args: &[&str]) {
    ironroot_testkit::run_ok(
        Command::new(env!("CARGO_BIN_EXE_ironroot-node-registry-writer"))
            .arg(url)
            .args(args),
    );
}

/// Writes `text` to `<dir>/node.toml` and returns the path.
pub fn config_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

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
