//! `ironroot firmware scan`: the CI gate. Exit 0 on a clean image, 1 on findings at or above
//! `--fail-on`, 2 on usage or I/O errors; JSON that parses and never carries the secret;
//! offsets in MCUboot images signed by imgtool are file offsets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn scan(args: &[&str]) -> Output {
    ironroot_testkit::run(
        Command::new(env!("CARGO_BIN_EXE_ironroot"))
            .args(["firmware", "scan"])
            .args(args),
    )
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit status")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Pseudo-random firmware bytes (no anchors), distinct per seed.
fn firmware(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn openssl_key(dir: &Path) -> Vec<u8> {
    let key = dir.join("device.pem");
    ironroot_testkit::run_ok(Command::new(ironroot_testkit::tool("openssl")).args([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        p(&key),
    ]));
    std::fs::read(key).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn clean_image_passes_and_a_planted_key_fails_the_gate_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::process::id() as u64;
    let clean = write(dir.path(), "clean.bin", &firmware(64 * 1024, seed));
    let out = scan(&[p(&clean)]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASS"));

    let key = openssl_key(dir.path());
    let mut bytes = firmware(64 * 1024, seed);
    bytes[0x1234..0x1234 + key.len()].copy_from_slice(&key);
    let dirty = write(dir.path(), "dirty.bin", &bytes);
    let out = scan(&[p(&dirty)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 1, "{text}");
    assert!(
        text.contains("0x00001234") && text.contains("critical"),
        "{text}"
    );
    let body: String = String::from_utf8_lossy(&key)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for line in body.as_bytes().chunks(16) {
        assert!(!text.contains(std::str::from_utf8(line).unwrap()), "{text}");
    }

    // JSON: the documented fields, the finding at its offset, no key material.
    let out = scan(&[p(&dirty), "--json"]);
    assert_eq!(code(&out), 1);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["container"]["format"], "raw");
    assert_eq!(v["fail_on"], "high");
    assert_eq!(v["failed"], true);
    assert_eq!(v["scanned_len"], 64 * 1024);
    let f = &v["findings"][0];
    assert_eq!(f["kind"], "private_key");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["offset"], 0x1234);
    assert_eq!(f["length"], key.trim_ascii_end().len());
    let json = String::from_utf8_lossy(&out.stdout);
    for line in body.as_bytes().chunks(16) {
        assert!(!json.contains(std::str::from_utf8(line).unwrap()));
    }
}

#[test]
fn fail_on_and_min_severity_set_the_gate_and_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = firmware(16 * 1024, 7);
    // A build path (low) and a JTAG switch (medium), no secret.
    let planted = b"\0/home/builder/fw/main.c\0jtag_enable=1\0";
    bytes[0x800..0x800 + planted.len()].copy_from_slice(planted);
    let img = write(dir.path(), "debug.bin", &bytes);
    assert_eq!(code(&scan(&[p(&img)])), 0, "nothing reaches high");
    assert_eq!(code(&scan(&[p(&img), "--fail-on", "medium"])), 1);
    assert_eq!(code(&scan(&[p(&img), "--fail-on", "low"])), 1);
    // --min-severity hides the low finding but not the gate's view of it.
    let out = scan(&[
        p(&img),
        "--json",
        "--min-severity",
        "medium",
        "--fail-on",
        "low",
    ]);
    assert_eq!(code(&out), 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["jtag_enable"]);
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.bin");
    let out = scan(&[p(&missing)]);
    assert_eq!(code(&out), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: reading"), "{err}");
    let img = write(dir.path(), "ok.bin", &firmware(1024, 3));
    assert_eq!(code(&scan(&[p(&img), "--fail-on", "severe"])), 2);
    assert_eq!(code(&scan(&[])), 2);
    // The same file and flags with a valid severity are accepted.
    assert_eq!(code(&scan(&[p(&img), "--fail-on", "critical"])), 0);
}

#[test]
fn key_in_an_imgtool_signed_image_is_reported_at_its_file_offset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let imgtool = ironroot_testkit::tool("imgtool");
    let sign_key = d.join("sign.pem");
    ironroot_testkit::run_ok(Command::new(&imgtool).args([
        "keygen",
        "-k",
        p(&sign_key),
        "-t",
        "ecdsa-p256",
    ]));
    let key = openssl_key(d);
    let mut payload = firmware(32 * 1024, 11);
    payload[0x300..0x300 + key.len()].copy_from_slice(&key);
    let app = write(d, "app.bin", &payload);
    let signed = d.join("app.signed.bin");
    ironroot_testkit::run_ok(Command::new(&imgtool).args([
        "sign",
        "-k",
        p(&sign_key),
        "--align",
        "4",
        "-v",
        "1.0.0",
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x20000",
        p(&app),
        p(&signed),
    ]));
    let out = scan(&[p(&signed), "--json"]);
    assert_eq!(code(&out), 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["container"]["format"], "mcuboot");
    assert_eq!(v["container"]["payload"]["offset"], 0x200);
    assert_eq!(v["findings"][0]["offset"], 0x200 + 0x300);
}
