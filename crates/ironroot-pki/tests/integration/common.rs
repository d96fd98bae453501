//! Shared fixtures: a CA in a temporary data directory, openssl helpers.

use std::path::{Path, PathBuf};
use std::process::Command;

use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, IssuancePolicy, IssuedCertificate,
    KdfParams, OnlineCa, OnlineKeyBackend, OnlineSecrets, Passphrase, RevokedEntry,
};
use ironroot_testkit::{run, run_ok, tool};
use time::{Duration, OffsetDateTime};

pub const ROOT_PASS: &str = "root passphrase for tests";
pub const ONLINE_PASS: &str = "online passphrase for tests";

pub fn pass(s: &str) -> Passphrase {
    Passphrase::new(s.as_bytes().to_vec()).unwrap()
}

/// A freshly initialised CA in a temp dir, online keys unlocked.
pub struct TestCa {
    pub tmp: tempfile::TempDir,
    pub dir: CaDirectory,
    pub online: OnlineCa,
}

impl TestCa {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CaDirectory::new(tmp.path());
        dir.init(
            InitOptions {
                root_passphrase: pass(ROOT_PASS),
                online: Some(OnlineKeyBackend::EncryptedFile(pass(ONLINE_PASS))),
                kdf: KdfParams::MINIMUM,
                hierarchy: HierarchyPolicy::default(),
                operator: DeviceId::parse("admin").unwrap(),
            },
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let online = dir
            .open_online(&secrets(), OffsetDateTime::now_utc())
            .unwrap();
        Self { tmp, dir, online }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn reload(&mut self) {
        self.online = self
            .dir
            .open_online(&secrets(), OffsetDateTime::now_utc())
            .unwrap();
    }

    /// Issues a device certificate from an openssl-made CSR; returns it and the key path.
    pub fn issue_device(&self, id: &str) -> (IssuedCertificate, PathBuf) {
        let key = self.path(&format!("{id}.key.pem"));
        let csr = openssl_csr(&key, &format!("/CN={id}"), &[], "P-256");
        let cert = self
            .online
            .issuing()
            .issue_device_from_csr(
                &csr,
                &DeviceId::parse(id).unwrap(),
                &IssuancePolicy::default(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        (cert, key)
    }

    /// Writes intermediate CRL(s) for `revoked` plus the root CRL into one PEM file.
    pub fn write_crls(&self, revoked: &[RevokedEntry], name: &str) -> PathBuf {
        let mut text = String::new();
        for crl in self
            .online
            .sign_crls(revoked, OffsetDateTime::now_utc(), Duration::hours(24))
            .unwrap()
        {
            text.push_str(&crl.pem());
        }
        text.push_str(&self.dir.root_crl_pem().unwrap());
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, data).unwrap();
        path
    }
}

pub fn secrets() -> OnlineSecrets {
    OnlineSecrets {
        passphrase: Some(pass(ONLINE_PASS)),
        pkcs11_pin: None,
    }
}

/// `openssl req` CSR with a fresh key on `curve` (or "RSA"), subject `subj`, and extra
/// `-addext` extensions. Returns the CSR PEM bytes; the key is written to `key`.
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

/// `openssl verify` with the given extra args; returns (success, combined output).
pub fn openssl_verify(args: &[&str], leaf: &Path) -> (bool, String) {
    let out = run(Command::new(tool("openssl"))
        .arg("verify")
        .args(args)
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
