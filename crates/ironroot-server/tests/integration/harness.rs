//! A real server on an ephemeral port over a fresh data directory (SQLite) or a throwaway
//! PostgreSQL database, with curl and openssl as the clients.
//!
//! PostgreSQL being unreachable FAILS the PostgreSQL tests; it never skips.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use ironroot_audit::{Event, Outcome};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, IssuancePolicy, KdfParams, OnlineSecrets,
    Passphrase, verify_csr,
};
use ironroot_server::identity::{IssuePurpose, IssueRequest};
use ironroot_server::{Limits, Server, ServerConfig, ServerHandle};
use ironroot_store::{CertificateKind, Store, on_backend, sqlx};
use ironroot_testkit::pg;

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running server and its data directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub server: Option<ServerHandle>,
    pub admin_token: String,
    pub pg_name: Option<String>,
}

/// Creates a CA in `dir` with cheap KDF parameters (tests only).
pub fn init_ca(dir: &Path) {
    CaDirectory::new(dir)
        .init(
            InitOptions {
                root_passphrase: Passphrase::random().unwrap(),
                online: None,
                kdf: KdfParams::MINIMUM,
                hierarchy: HierarchyPolicy::default(),
                operator: DeviceId::parse("admin").unwrap(),
            },
            time::OffsetDateTime::now_utc(),
        )
        .expect("ca init");
}

impl Fixture {
    /// Starts a server with `tweak` applied to the default configuration.
    pub async fn start(db: Db, tweak: impl FnOnce(&mut ServerConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path());
        let mut config = ServerConfig::new(dir.path());
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.limits = Limits::danger_unthrottled();
        let mut pg_name = None;
        if db == Db::Postgres {
            let (url, name) = pg::create_database("ironroot_server_test").await;
            config.database_url = Some(url);
            pg_name = Some(name);
        }
        tweak(&mut config);
        let server = Server::start(config).await.expect("server starts");
        let admin_token = std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Fixture {
            dir,
            server: Some(server),
            admin_token,
            pg_name,
        }
    }

    pub fn server(&self) -> &ServerHandle {
        self.server.as_ref().unwrap()
    }

    pub fn store(&self) -> &Store {
        self.server().store()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA chain clients trust.
    pub fn chain(&self) -> PathBuf {
        self.dir.path().join("pki").join("chain.pem")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server().url())
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        if let Some(name) = self.pg_name.take() {
            pg::drop_database(&name).await;
        }
    }

    /// curl against the server, trusting the ironroot chain. Returns the output.
    pub async fn curl(&self, args: &[&str]) -> Output {
        let chain = self.chain();
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&chain)
            .args(args);
        cmd.output().await.expect("run curl")
    }

    /// An operator call with the admin token; returns (HTTP status, body).
    pub async fn admin(&self, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
        let auth = format!("Authorization: Bearer {}", self.admin_token);
        let url = self.url(path);
        let mut args = vec!["-X", method, "-H", &auth, "-w", "\n%{http_code}", &url];
        if let Some(j) = json {
            args.extend(["-H", "Content-Type: application/json", "--data-binary", j]);
        }
        status_and_body(&self.curl(&args).await)
    }

    /// Registers a device and mints a claim token for it.
    pub async fn add_with_token(&self, id: &str) -> String {
        let (status, body) = self
            .admin(
                "POST",
                "/api/v1/devices",
                Some(&format!(r#"{{"id":"{id}"}}"#)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        self.claim(id, None).await
    }

    pub async fn claim(&self, id: &str, ttl: Option<u64>) -> String {
        let body = match ttl {
            Some(t) => format!(r#"{{"ttl_seconds":{t}}}"#),
            None => "{}".to_owned(),
        };
        let (status, body) = self
            .admin("POST", &format!("/api/v1/devices/{id}/claim"), Some(&body))
            .await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// Number of operational certificates recorded for a device (factory credentials,
    /// recorded too, are not counted).
    pub async fn cert_count(&self, id: &str) -> usize {
        self.store()
            .certificates_for_device(id)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.kind == CertificateKind::Operational)
            .count()
    }

    /// Every audit event so far.
    pub async fn audit_events(&self) -> Vec<Event> {
        let mut pooled = self.store().acquire().await.unwrap();
        let mut conn = pooled.connection();
        let rows: Vec<(Vec<u8>,)> = on_backend!(&mut conn, c => {
            sqlx::query_as("SELECT data FROM audit_leaves ORDER BY idx")
                .fetch_all(&mut **c)
                .await
                .unwrap()
        });
        rows.iter().map(|(d,)| Event::decode(d).unwrap()).collect()
    }

    /// Asserts that a denied event of `event_type` with `reason` was recorded for `device`.
    pub async fn assert_denied(&self, event_type: &str, device: Option<&str>, reason: &str) {
        let events = self.audit_events().await;
        let found = events.iter().any(|e| {
            e.event_type == event_type
                && e.outcome == Outcome::Denied
                && e.details.get("reason").map(String::as_str) == Some(reason)
                && device.is_none_or(|d| e.subject.id == d)
        });
        assert!(
            found,
            "no denied {event_type} ({reason}) for {device:?} in the audit log: {:#?}",
            events
                .iter()
                .map(|e| (&e.event_type, &e.outcome, &e.subject.id, &e.details))
                .collect::<Vec<_>>()
        );
    }

    /// Issues a factory (bootstrap) certificate for `id` as a manufacturing line does
    /// (`ironroot ca issue --factory`): through the server's identity service, so it is
    /// recorded and audited (the server accepts no other). The device must still be
    /// manufactured. Writes key and cert PEM into the data dir; returns their paths.
    pub async fn factory_credential(&self, id: &str) -> (PathBuf, PathBuf) {
        let (key, csr_der) = new_key_and_csr(self.dir.path(), &format!("factory-{id}"), Some(id));
        let issued = self
            .server()
            .identity()
            .issue(IssueRequest {
                device: DeviceId::parse(id).unwrap(),
                csr: std::fs::read(&csr_der).unwrap(),
                actor: "operator:factory-line".into(),
                source: None,
                purpose: IssuePurpose::Factory,
            })
            .await
            .expect("factory credential issued");
        let cert_path = self.path(&format!("factory-{id}.crt.pem"));
        std::fs::write(&cert_path, issued.pem()).unwrap();
        (key, cert_path)
    }

    /// A factory certificate for `id` signed with the factory CA's key directly (pki only),
    /// never recorded in the registry: what a leaked factory key or an unaudited side
    /// channel would produce. Returns (key, cert) paths.
    pub fn unrecorded_factory_credential(&self, id: &str) -> (PathBuf, PathBuf) {
        let (key, csr_der) =
            new_key_and_csr(self.dir.path(), &format!("unrecorded-{id}"), Some(id));
        let ca = online_ca(self.dir.path());
        let csr = verify_csr(&std::fs::read(&csr_der).unwrap(), &Default::default()).unwrap();
        let cert = ca
            .factory()
            .issue_bootstrap(
                &csr,
                &DeviceId::parse(id).unwrap(),
                &IssuancePolicy::default(),
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let cert_path = self.path(&format!("unrecorded-{id}.crt.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        (key, cert_path)
    }
}

/// Waits (up to 10 s) for an audit entry matching `pred`: entries about enrollments and
/// handshakes are written after the fact, not awaited by the request.
pub async fn wait_for_event(fx: &Fixture, pred: impl Fn(&Event) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = fx.audit_events().await;
        if events.iter().any(&pred) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{events:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Opens the online CA of a test data directory.
pub fn online_ca(dir: &Path) -> ironroot_pki::OnlineCa {
    let pass = std::fs::read(dir.join("pki").join("online-passphrase")).unwrap();
    let pass = String::from_utf8(pass)
        .unwrap()
        .trim_end()
        .as_bytes()
        .to_vec();
    CaDirectory::new(dir)
        .open_online(
            &OnlineSecrets {
                passphrase: Some(Passphrase::new(pass).unwrap()),
                pkcs11_pin: None,
            },
            time::OffsetDateTime::now_utc(),
        )
        .unwrap()
}

/// Runs openssl; panics with stderr on failure.
pub fn openssl(args: &[&str]) -> Output {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is required (apt install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new P-256 key (`<name>.key.pem`) and a DER CSR (`<name>.csr.der`), CN = `cn` if given.
/// Also writes the base64 body EST wants (`<name>.csr.b64`). Returns (key, csr.der).
pub fn new_key_and_csr(dir: &Path, name: &str, cn: Option<&str>) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key.pem"));
    let csr = dir.join(format!("{name}.csr.der"));
    let subj = match cn {
        Some(cn) => format!("/CN={cn}"),
        None => "/O=nothing".to_owned(),
    };
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        &subj,
        "-outform",
        "DER",
        "-out",
        csr.to_str().unwrap(),
    ]);
    openssl(&[
        "base64",
        "-in",
        csr.to_str().unwrap(),
        "-out",
        dir.join(format!("{name}.csr.b64")).to_str().unwrap(),
    ]);
    (key, csr)
}

/// Splits curl output written with `-w "\n%{http_code}"`.
pub fn status_and_body(out: &Output) -> (u16, String) {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Decodes an EST base64 certs-only body with openssl; returns the PEM certificates.
pub fn pkcs7_to_pem(dir: &Path, name: &str, body_b64: &str) -> String {
    let b64 = dir.join(format!("{name}.p7.b64"));
    let der = dir.join(format!("{name}.p7.der"));
    std::fs::write(&b64, body_b64).unwrap();
    openssl(&[
        "base64",
        "-d",
        "-in",
        b64.to_str().unwrap(),
        "-out",
        der.to_str().unwrap(),
    ]);
    let out = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-print_certs",
    ]);
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until `f` holds (polling), or panics after `max`.
pub async fn eventually<F, Fut>(max: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < max {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}
