//! Shared helpers: keys and images made at test time, espsecure runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ironroot_esp::{EspPublicKey, KeyDigest, Scheme};
use ironroot_testkit::{espsecure, run, run_ok};

/// A temporary directory with an espsecure-generated key of `scheme`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
}

impl Fixture {
    /// Generates a key with `espsecure generate-signing-key --version 2 --scheme S`.
    pub fn new(scheme: Scheme) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = gen_key(dir.path(), scheme, "key");
        Fixture { dir, key }
    }

    /// A path inside the fixture's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `data` to `name` and returns its path.
    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// The digest of this fixture's key, computed by ironroot.
    pub fn digest(&self) -> KeyDigest {
        key_digest(&self.key)
    }
}

/// Generates another key of `scheme` in `dir` with espsecure.
pub fn gen_key(dir: &Path, scheme: Scheme, stem: &str) -> PathBuf {
    let key = dir.join(format!("{stem}-{}.pem", scheme.espsecure_name()));
    run_ok(
        Command::new(espsecure())
            .args([
                "generate-signing-key",
                "--version",
                "2",
                "--scheme",
                scheme.espsecure_name(),
            ])
            .arg(&key),
    );
    key
}

/// ironroot's digest of a PEM key file.
pub fn key_digest(pem: &Path) -> KeyDigest {
    EspPublicKey::from_pem(&std::fs::read(pem).unwrap())
        .unwrap()
        .digest()
}

/// `espsecure verify-signature --version 2 --keyfile KEY IMAGE` (exit status left to the caller).
pub fn esp_verify(key: &Path, image: &Path) -> Output {
    run(Command::new(espsecure())
        .args(["verify-signature", "--version", "2", "--keyfile"])
        .arg(key)
        .arg(image))
}

/// `espsecure sign-data --version 2 --keyfile K... [extra] --output OUT IN`.
pub fn esp_sign(keys: &[&Path], extra: &[&str], input: &Path, output: &Path) {
    let mut cmd = Command::new(espsecure());
    cmd.args(["sign-data", "--version", "2"]);
    if !keys.is_empty() {
        cmd.arg("--keyfile").args(keys);
    }
    cmd.args(extra).arg("--output").arg(output).arg(input);
    run_ok(&mut cmd);
}

/// Pseudo-random test data of `len` bytes (deterministic per seed).
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Asserts an espsecure run failed, showing its output if not.
pub fn assert_refused(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "espsecure accepted {what}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts an espsecure run succeeded, showing its output if not.
pub fn assert_accepted(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "espsecure refused {what}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bitwise CRC32 (IEEE, as zlib), written here so tests do not reuse the code under test.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
