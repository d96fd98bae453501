//! `ironroot ota client` over an `https://` mirror: the mirror's certificate must chain to
//! `--ca-file`; without it (or with another CA) nothing is fetched.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ota_tuf::{Repo, ok, ota, p, sha256_hex};
use crate::support::{Proc, free_port};

fn openssl(args: &[&str]) {
    ok(
        ironroot_testkit::run(Command::new(ironroot_testkit::tool("openssl")).args(args)),
        "openssl",
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, generated at test time.
fn pki(d: &Path, name: &str) {
    let f = |s: &str| d.join(format!("{name}-{s}")).to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    let (ca_key, ca, key, csr, cert, ext) = (
        f("ca.key"),
        f("ca.pem"),
        f("key.pem"),
        f("csr"),
        f("cert.pem"),
        f("ext"),
    );
    a.extend([
        "-subj",
        "/CN=test-ca",
        "-days",
        "1",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    openssl(&a);
    let mut a = vec!["req", "-new"];
    a.extend(ec);
    a.extend(["-subj", "/CN=127.0.0.1", "-keyout", &key, "-out", &csr]);
    openssl(&a);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
}

#[test]
fn https_mirror_is_used_only_with_its_ca() {
    let repo = Repo::new(true, &[]);
    let d = repo.dir.parent().unwrap().to_path_buf();
    pki(&d, "good");
    pki(&d, "other");
    let port = free_port();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/ota_tuf_https_server.py");
    let (cert, key) = (d.join("good-cert.pem"), d.join("good-key.pem"));
    let child = Command::new(ironroot_testkit::python())
        .arg(script)
        .args([&port.to_string(), p(&repo.dir), p(&cert), p(&key)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "https server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let meta = d.join("https-meta");
    ok(
        ota(&[
            "client",
            "--metadata-dir",
            p(&meta),
            "init",
            p(&repo.meta("1.root.json")),
        ]),
        "init",
    );
    let (url, turl) = (
        format!("https://127.0.0.1:{port}/metadata/"),
        format!("https://127.0.0.1:{port}/targets/"),
    );
    let out_dir = d.join("https-out");
    let download = |ca: Option<&Path>| {
        let mut a = vec!["client", "--metadata-url", &url, "--metadata-dir", p(&meta)];
        a.extend([
            "--target-name",
            "fw.bin",
            "--target-dir",
            p(&out_dir),
            "--target-base-url",
            &turl,
        ]);
        if let Some(ca) = ca {
            a.extend(["--ca-file", p(ca)]);
        }
        a.push("download");
        ota(&a)
    };
    let no_ca = download(None);
    assert_eq!(no_ca.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("needs --ca-file"));
    let other = download(Some(&d.join("other-ca.pem")));
    assert_eq!(other.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("TLS handshake"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    ok(
        download(Some(&d.join("good-ca.pem"))),
        "download over https",
    );
    let fw = std::fs::read(repo.fw()).unwrap();
    assert_eq!(
        sha256_hex(&std::fs::read(out_dir.join("fw.bin")).unwrap()),
        sha256_hex(&fw)
    );
}
