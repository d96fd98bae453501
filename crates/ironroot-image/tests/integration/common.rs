//! Helpers: a scratch directory, imgtool invocations, test firmware.

use std::path::{Path, PathBuf};
use std::process::Command;

use ironroot_image::tools::{KeyFile, PrivateKey, PublicKey, SignOptions, sign};
use ironroot_image::{ImageVersion, TrustedKey};

pub use tempfile::TempDir;

/// A fresh scratch directory.
pub fn scratch() -> TempDir {
    tempfile::tempdir().expect("create scratch dir")
}

/// Deterministic pseudo-random firmware of `len` bytes (no leading zeros, like real code).
pub fn firmware(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write file");
    p
}

/// Runs imgtool with `args`; returns (success, stdout + stderr).
pub fn imgtool(args: &[&str]) -> (bool, String) {
    let out = ironroot_testkit::run(Command::new(ironroot_testkit::tool("imgtool")).args(args));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs imgtool and insists it succeeds.
pub fn imgtool_ok(args: &[&str]) -> String {
    let (ok, text) = imgtool(args);
    assert!(ok, "imgtool {args:?} failed:\n{text}");
    text
}

/// `imgtool dumpinfo -f json` parsed.
pub fn imgtool_dump(image: &Path) -> serde_json::Value {
    let text = imgtool_ok(&["dumpinfo", "-f", "json", path(image)]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("imgtool json: {e}\n{text}"))
}

/// `imgtool verify -k key image` outcome.
pub fn imgtool_verify(key: &Path, image: &Path) -> (bool, String) {
    imgtool(&["verify", "-k", path(key), path(image)])
}

/// A path as &str (scratch paths are UTF-8).
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Generates a key with imgtool.
pub fn imgtool_keygen(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let p = dir.join(name);
    imgtool_ok(&["keygen", "-t", kind, "-k", path(&p)]);
    p
}

/// Loads a key file with ironroot.
pub fn load(p: &Path) -> KeyFile {
    KeyFile::load(p).unwrap_or_else(|e| panic!("load {}: {e}", p.display()))
}

/// The trusted key for a key file.
pub fn trusted(p: &Path) -> TrustedKey {
    load(p).public_key().trusted_key().expect("signing key")
}

/// Signs `input` with ironroot into `out`.
pub fn ironroot_sign(
    input: &Path,
    out: &Path,
    key: Option<&PrivateKey>,
    enc: Option<&PublicKey>,
    opts: &SignOptions,
) {
    let i = std::fs::File::open(input).expect("open input");
    let o = std::fs::File::create(out).expect("create output");
    sign(
        std::io::BufReader::new(i),
        std::io::BufWriter::new(o),
        key,
        enc,
        opts,
    )
    .unwrap_or_else(|e| panic!("ironroot sign: {e}"));
}

/// Default options matching `-v 1.2.3+4 -H 0x200 --pad-header -S 0x20000`.
pub fn default_opts() -> SignOptions {
    let mut o = SignOptions::new(ImageVersion::new(1, 2, 3, 4), 0x200, 0x20000);
    o.pad_header = true;
    o
}

/// The imgtool arguments equivalent to [`default_opts`].
pub const DEFAULT_ARGS: [&str; 7] = [
    "-v",
    "1.2.3+4",
    "-H",
    "0x200",
    "--pad-header",
    "-S",
    "0x20000",
];

/// Hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
