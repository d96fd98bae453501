//! The grader against `openssl s_server` (the oracle: a TLS stack nobody here wrote, set up to
//! accept what it is told): a deliberately weak server fails exactly the checks named for its
//! weaknesses; the same probes against a hardened s_server pass.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironroot_testkit::{run_ok, tool};
use ironroot_tlscheck::{ClientCertificate, Grade, Options, Report, Status, check};

/// A running `openssl s_server`, killed on drop.
pub struct SServer {
    child: Child,
    /// 127.0.0.1:PORT.
    pub addr: String,
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A self-signed RSA-2048 (`rsa`) or P-256 certificate and key, generated now.
pub fn self_signed(dir: &Path, rsa: bool) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let newkey: &[&str] = if rsa {
        &["-newkey", "rsa:2048"]
    } else {
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    };
    run_ok(
        Command::new(tool("openssl"))
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "90",
                "-subj",
                "/CN=localhost",
            ])
            .args(newkey)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

/// Starts `openssl s_server` with `args` on a free port and waits until it accepts.
pub fn s_server(cert: &Path, key: &Path, args: &[&str]) -> SServer {
    let port = free_port();
    let child = Command::new(tool("openssl"))
        .args(["s_server", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "openssl s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    SServer { child, addr }
}

fn status(report: &Report, id: &str) -> Status {
    report
        .check(id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#?}"))
        .status
}

/// The weak server everyone knows: TLS 1.0-1.3, every cipher at security level 0, a 1024-bit
/// DH prime, secp224r1 among the groups, legacy renegotiation.
pub fn weak_server(dir: &Path) -> SServer {
    let (cert, key) = self_signed(dir, true);
    let dh = dir.join("dh1024.pem");
    run_ok(
        Command::new(tool("openssl"))
            .args(["genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt"])
            .arg("dh_paramgen_prime_len:1024")
            .arg("-out")
            .arg(&dh),
    );
    s_server(
        &cert,
        &key,
        &[
            "-cipher",
            "ALL:@SECLEVEL=0",
            "-groups",
            "secp224r1:P-256:X25519",
            "-dhparam",
            dh.to_str().unwrap(),
            "-legacy_renegotiation",
        ],
    )
}

#[test]
fn weak_openssl_server_fails_the_checks_named_for_its_weaknesses() {
    let tmp = tempfile::tempdir().unwrap();
    let server = weak_server(tmp.path());
    let report = check(&Options::new(server.addr.clone())).unwrap();
    for id in [
        "protocol.tls1_0",
        "protocol.tls1_1",
        "cipher.cbc",
        "cipher.static_rsa",
        "group.weak_ec",
        "group.weak_dh",
    ] {
        assert_eq!(status(&report, id), Status::Fail, "{id}: {report:#?}");
    }
    assert_eq!(report.grade, Grade::F);
    assert!(!report.passed());
    assert!(report.protocols.contains(&"TLSv1.0".to_owned()));
    assert!(
        report.groups.contains(&"secp224r1".to_owned()),
        "{report:#?}"
    );
    assert!(report.groups.contains(&"DH-1024".to_owned()), "{report:#?}");
    assert!(
        report
            .cipher_suites
            .iter()
            .any(|s| s.name == "TLS_RSA_WITH_AES_128_CBC_SHA"),
        "{report:#?}"
    );
    // What it does right still passes: the probes are not failing everything.
    for id in [
        "protocol.tls1_3",
        "compression",
        "handshake",
        "certificate.key",
    ] {
        assert_eq!(status(&report, id), Status::Pass, "{id}: {report:#?}");
    }
}

#[test]
fn hardened_openssl_server_passes_every_check() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(tmp.path(), false);
    let server = s_server(
        &cert,
        &key,
        &[
            "-no_tls1",
            "-no_tls1_1",
            "-cipher",
            "ECDHE+AESGCM:ECDHE+CHACHA20",
            "-groups",
            "X25519:P-256:P-384",
            "-no_renegotiation",
        ],
    );
    let report = check(&Options::new(server.addr.clone())).unwrap();
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(report.grade, Grade::A);
    assert_eq!(report.protocols, ["TLSv1.2", "TLSv1.3"]);
    assert_eq!(report.client_certificate, ClientCertificate::NotRequested);
}

#[test]
fn unreachable_host_is_a_clear_error() {
    let port = free_port();
    let err = check(&Options::new(format!("127.0.0.1:{port}"))).unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let err = check(&Options::new("no-port-here")).unwrap_err();
    assert!(err.to_string().contains("expected HOST:PORT"), "{err}");
}
