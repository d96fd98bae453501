//! The test image set, generated at test time: keys and certificates by `openssl`, MCUboot
//! images by `imgtool sign`, tokens assembled from a type prefix and random characters (no
//! secret, real or fake, is written in this repository), and random firmware-like bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use ironroot_scan::{Finding, FindingKind, Report, Severity};

pub use tempfile::TempDir;

/// A fresh scratch directory.
pub fn scratch() -> TempDir {
    tempfile::tempdir().expect("create scratch dir")
}

/// A small xorshift generator; seeded from the clock unless a seed is given, so planted
/// values differ on every run (nothing about them is hard-coded).
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and a counter.
    pub fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(1);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Self::seeded(t ^ N.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed))
    }

    /// Seeded deterministically.
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// `n` characters drawn from `alphabet`.
    pub fn chars(&mut self, alphabet: &str, n: usize) -> String {
        let a = alphabet.as_bytes();
        (0..n)
            .map(|_| a[(self.next() % a.len() as u64) as usize] as char)
            .collect()
    }
}

pub const BASE32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Firmware-like clean bytes: random "code" with zero padding and benign strings a real
/// image carries (version banner, copyright, log messages, a broker host name).
pub fn clean_firmware(rng: &mut Rng, len: usize) -> Vec<u8> {
    const BENIGN: &[&str] = &[
        "Firmware v2.4.1 (release)",
        "Copyright (c) 2026 Example Devices",
        "Initializing sensors...",
        "mqtt.example.net",
        "Connecting to Wi-Fi",
        "OTA update complete, rebooting",
        "temperature=%d.%02d C",
        "Enter password: ",
        "login failed",
    ];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        match rng.next() % 8 {
            0 => out.extend(std::iter::repeat_n(0u8, (rng.next() % 64) as usize)),
            1 => {
                out.extend_from_slice(BENIGN[(rng.next() as usize) % BENIGN.len()].as_bytes());
                out.push(0);
            }
            _ => out.extend(rng.bytes(256)),
        }
    }
    out.truncate(len);
    out
}

/// Runs openssl with `args`, insisting it succeeds.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    ironroot_testkit::run_ok(Command::new(ironroot_testkit::tool("openssl")).args(args)).stdout
}

/// Runs imgtool with `args`, insisting it succeeds.
pub fn imgtool(args: &[&str]) {
    ironroot_testkit::run_ok(Command::new(ironroot_testkit::tool("imgtool")).args(args));
}

/// `path` as `&str`.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A private key of `alg` (`EC` P-256, `ED25519`, `RSA` 2048) as PKCS#8 PEM, by openssl.
pub fn genpkey(dir: &Path, name: &str, alg: &str) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["genpkey", "-algorithm", alg, "-out", p(&path)];
    match alg {
        "EC" => args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]),
        "RSA" => args.extend(["-pkeyopt", "rsa_keygen_bits:2048"]),
        _ => {}
    }
    openssl(&args);
    path
}

/// A self-signed certificate for `key` (PEM), by openssl.
pub fn self_signed(dir: &Path, key: &Path, cn: &str) -> PathBuf {
    let path = dir.join(format!("{cn}.crt"));
    let subj = format!("/CN={cn}");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        p(key),
        "-subj",
        &subj,
        "-days",
        "2",
        "-out",
        p(&path),
    ]);
    path
}

/// Places `secret` at `offset` in `image` (overwriting), returning the offset.
pub fn plant(image: &mut [u8], offset: usize, secret: &[u8]) -> usize {
    image[offset..offset + secret.len()].copy_from_slice(secret);
    offset
}

/// The findings of `kind` at `offset`.
pub fn at(report: &Report, kind: FindingKind, offset: usize) -> Vec<&Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.kind == kind && f.offset == offset as u64)
        .collect()
}

/// Asserts one finding of `kind` and `severity` at `offset`, and returns it.
pub fn expect(report: &Report, kind: FindingKind, severity: Severity, offset: usize) -> &Finding {
    let found = at(report, kind, offset);
    assert!(
        found.iter().any(|f| f.severity == severity),
        "expected {kind} ({severity}) at {offset:#x}; report: {:#?}",
        report.findings
    );
    found.into_iter().find(|f| f.severity == severity).unwrap()
}

/// Asserts no detail and no JSON field of `report` contains `secret` or any 12-character
/// window of it.
pub fn assert_redacted(report: &Report, secret: &str) {
    let json = serde_json::to_string(report).unwrap();
    let bytes = secret.as_bytes();
    let windows: Vec<&[u8]> = if bytes.len() <= 12 {
        vec![bytes]
    } else {
        bytes.windows(12).collect()
    };
    for w in windows {
        let w = String::from_utf8_lossy(w);
        assert!(!json.contains(w.as_ref()), "report leaks {w:?}: {json}");
    }
}
