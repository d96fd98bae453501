//! False positives on real binaries nobody planted anything in: the ELF programs of the
//! machine and this very test binary. Nothing may reach `high` (the CI gate's default); the
//! lower findings are printed (run with `--nocapture`) and documented in
//! docs/security-testing.md.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::process::Command;

use ironroot_scan::{FindingKind, Scanner, Severity};

/// Programs present on any Debian test machine (coreutils, bash, tar, gzip, openssl, git,
/// python3: shells, crypto libraries' callers, interpreters).
const PROGRAMS: &[&str] = &[
    "/usr/bin/bash",
    "/usr/bin/ls",
    "/usr/bin/cp",
    "/usr/bin/tar",
    "/usr/bin/gzip",
    "/usr/bin/git",
    "/usr/bin/python3",
    "/usr/bin/curl",
    "/usr/bin/ssh",
];

#[test]
fn real_binaries_have_no_finding_at_or_above_high() {
    let mut files: Vec<PathBuf> = PROGRAMS
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    assert!(
        files.len() >= 5,
        "expected most of {PROGRAMS:?} on the test machine; run `bash .ci/run`"
    );
    files.push(std::env::current_exe().unwrap());
    let scanner = Scanner::new();
    for file in files {
        let bytes = std::fs::read(std::fs::canonicalize(&file).unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x7fELF"), "{}", file.display());
        let report = scanner.scan(&bytes);
        let mut by: BTreeMap<(Severity, String), usize> = BTreeMap::new();
        for f in &report.findings {
            *by.entry((f.severity, f.kind.to_string())).or_default() += 1;
        }
        println!("{} ({} KiB): {by:?}", file.display(), bytes.len() / 1024);
        let high: Vec<_> = report.at_least(Severity::High).collect();
        assert!(high.is_empty(), "{}: {high:#?}", file.display());
    }
}

/// `openssl speed` carries RSA test keys (512 to 15360 bits, OpenSSL's `apps/testrsa.h`)
/// compiled into the binary: real private keys, so true positives. Each one reported is cut
/// out at its offset and length and `openssl rsa -check` (the oracle) must accept it as a
/// consistent RSA private key; nothing else in the binary may reach high.
#[test]
fn openssl_binary_embeds_rsa_test_keys_and_openssl_confirms_each_one() {
    let openssl = ironroot_testkit::tool("openssl");
    let bytes = std::fs::read(std::fs::canonicalize(&openssl).unwrap()).unwrap();
    let report = Scanner::new().scan(&bytes);
    let high: Vec<_> = report.at_least(Severity::High).collect();
    assert!(!high.is_empty(), "openssl speed's test keys were not found");
    let dir = tempfile::tempdir().unwrap();
    for f in high {
        assert_eq!(
            (f.kind, f.severity),
            (FindingKind::PrivateKey, Severity::Critical),
            "{f:?}"
        );
        assert!(
            f.detail.starts_with("PKCS#1 private key (DER), rsa"),
            "{f:?}"
        );
        let der = &bytes[f.offset as usize..(f.offset + f.length) as usize];
        let path = dir.path().join(format!("{}.der", f.offset));
        std::fs::write(&path, der).unwrap();
        let out = ironroot_testkit::run_ok(Command::new(&openssl).args([
            "rsa",
            "-inform",
            "DER",
            "-in",
            path.to_str().unwrap(),
            "-check",
            "-noout",
        ]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("RSA key ok"),
            "{f:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
