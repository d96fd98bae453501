//! `ironroot ca issue | revoke | crl` on SQLite and PostgreSQL, judged by openssl; and a live
//! revocation by the CLI (another process) cutting a running rustls server's next handshake.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironroot_identity::{IdentityOptions, IdentityService};
use ironroot_pki::CaSigner as _;
use ironroot_pki::{
    CaDirectory, IssuancePolicy, OnlineSecrets, Passphrase, RevocationCheckingVerifier, Serial,
    ServerName, SoftwareKey, SubjectKey,
};
use ironroot_testkit::{run, run_ok, tool};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};

const ROOT_PASS: &str = "root passphrase for the CLI tests";

fn ironroot(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env("IRONROOT_ROOT_PASSPHRASE", ROOT_PASS)
        .env("IRONROOT_DATA_DIR", data_dir);
    cmd
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    assert!(stderr.starts_with("error: "), "one error line: {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains(needle),
        "{stderr:?} should mention {needle:?}"
    );
}

fn csr(dir: &Path, name: &str, subj: &str, curve: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    run_ok(
        Command::new(tool("openssl"))
            .args(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}"))
            .arg("-keyout")
            .arg(&key)
            .args(["-subj", subj, "-out"])
            .arg(&csr),
    );
    (key, csr)
}

fn verify(chain: &Path, crl: &Path, leaf: &Path) -> (bool, String) {
    let out = run(Command::new(tool("openssl"))
        .arg("verify")
        .arg("-CAfile")
        .arg(chain)
        .arg("-crl_check")
        .arg("-CRLfile")
        .arg(crl)
        .arg(leaf));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn serial_of(cert: &Path) -> String {
    let out = run_ok(
        Command::new(tool("openssl"))
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(cert),
    );
    stdout(&out).trim().trim_start_matches("serial=").to_owned()
}

/// The whole CLI flow on one database (`db`: extra args such as --database-url).
fn issue_revoke_crl_flow(dir: &Path, db: &[&str]) {
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(db.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let cli = |args: &[&str]| {
        let args = with(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ironroot(dir, &args)
    };
    run_ok(&mut ironroot(dir, &["ca", "init"]));
    run_ok(&mut cli(&["device", "add", "sensor-0001"]));
    run_ok(&mut cli(&["device", "add", "sensor-0002"]));
    let (_, csr1) = csr(dir, "s1", "/CN=sensor-0001", "P-256");
    let (_, csr2) = csr(dir, "s2", "/CN=sensor-0002", "P-256");
    let c1 = dir.join("s1.crt");
    let c2 = dir.join("s2.crt");
    let chain = dir.join("chain.pem");
    let crl = dir.join("crl.pem");
    let out = run_ok(&mut cli(&[
        "ca",
        "issue",
        "--device",
        "sensor-0001",
        "--csr",
        csr1.to_str().unwrap(),
        "--out",
        c1.to_str().unwrap(),
        "--chain-out",
        chain.to_str().unwrap(),
    ]));
    let text = stdout(&out);
    assert!(text.contains("now provisioned"), "{text}");
    // openssl pads the first byte to two digits (09AB...); ironroot prints the number (9ab...).
    let serial = serial_of(&c1).to_lowercase();
    assert!(
        text.contains(&format!(
            "serial       {}\n",
            serial.trim_start_matches('0')
        )),
        "{text}"
    );
    run_ok(&mut cli(&[
        "ca",
        "issue",
        "--device",
        "sensor-0002",
        "--csr",
        csr2.to_str().unwrap(),
        "--out",
        c2.to_str().unwrap(),
    ]));
    run_ok(&mut cli(&["ca", "crl", "--out", crl.to_str().unwrap()]));
    for c in [&c1, &c2] {
        let (ok, out) = verify(&chain, &crl, c);
        assert!(ok, "before revocation: {out}");
    }
    let show = stdout(&run_ok(&mut cli(&["device", "show", "sensor-0001"])));
    assert!(show.contains("provisioned"), "{show}");

    // Revoke one by serial (as openssl prints it), the other by device.
    let out = run_ok(&mut cli(&["ca", "revoke", "--serial", &serial_of(&c1)]));
    assert!(
        stdout(&out).contains("Revoked certificate"),
        "{}",
        stdout(&out)
    );
    let out = run_ok(&mut cli(&[
        "ca",
        "revoke",
        "--device",
        "sensor-0002",
        "--reason",
        "key-compromise",
    ]));
    assert!(
        stdout(&out).contains("1 certificate(s)"),
        "{}",
        stdout(&out)
    );
    run_ok(&mut cli(&["ca", "crl", "--out", crl.to_str().unwrap()]));
    for c in [&c1, &c2] {
        let (ok, out) = verify(&chain, &crl, c);
        assert!(!ok && out.contains("certificate revoked"), "{out}");
    }
    // The CRL file the server serves says the same.
    let (ok, out) = verify(&chain, &dir.join("pki/crl.pem"), &c1);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let crl_text = stdout(&run_ok(
        Command::new(tool("openssl"))
            .args(["crl", "-noout", "-text", "-in"])
            .arg(&crl),
    ));
    assert!(crl_text.contains("Key Compromise"), "{crl_text}");

    // Errors: one line, non-zero, nothing written.
    let bad = dir.join("bad.crt");
    let (_, other) = csr(dir, "o", "/CN=ghost", "P-256");
    let out = run(&mut cli(&[
        "ca",
        "issue",
        "--device",
        "ghost",
        "--csr",
        other.to_str().unwrap(),
        "--out",
        bad.to_str().unwrap(),
    ]));
    assert_fails_with(&out, "unknown device 'ghost'");
    let (_, p384) = csr(dir, "p384", "/CN=sensor-0001", "P-384");
    let out = run(&mut cli(&[
        "ca",
        "issue",
        "--device",
        "sensor-0001",
        "--csr",
        p384.to_str().unwrap(),
        "--out",
        bad.to_str().unwrap(),
    ]));
    assert_fails_with(&out, "not allowed");
    let out = run(&mut cli(&[
        "ca",
        "issue",
        "--device",
        "sensor-0002",
        "--csr",
        csr2.to_str().unwrap(),
        "--out",
        bad.to_str().unwrap(),
    ]));
    assert_fails_with(&out, "device 'sensor-0002' is revoked");
    assert!(!bad.exists());
    let out = run(&mut cli(&["ca", "revoke", "--serial", &serial_of(&c1)]));
    assert_fails_with(&out, "is revoked: cannot revoke");
    let out = run(&mut cli(&["ca", "revoke", "--serial", "xyz"]));
    assert_fails_with(&out, "not a hex serial");

    // The audit log holds all of it and verifies.
    let out = run_ok(&mut cli(&["audit", "verify"]));
    assert!(stdout(&out).contains("witness"), "{}", stdout(&out));
}

#[test]
fn issue_revoke_and_crl_on_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    issue_revoke_crl_flow(tmp.path(), &[]);
}

#[test]
fn issue_revoke_and_crl_on_postgresql() {
    let admin = std::env::var("IRONROOT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("ironroot_cli_identity_{}", std::process::id());
    let psql = tool("psql");
    let created = run(Command::new(&psql).args([&admin, "-c", &format!("CREATE DATABASE {name}")]));
    assert!(
        created.status.success(),
        "PostgreSQL at {admin} is required (run `bash .ci/run`): {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let tmp = tempfile::tempdir().unwrap();
    let result = std::panic::catch_unwind(|| {
        issue_revoke_crl_flow(tmp.path(), &["--database-url", &url]);
        let revoked = run_ok(Command::new(&psql).args([
            &url,
            "-Atc",
            "SELECT count(*) FROM certificates WHERE status = 'revoked'",
        ]));
        assert_eq!(stdout(&revoked).trim(), "2");
        assert!(
            !tmp.path().join("ironroot.db").exists(),
            "--database-url must not create a SQLite registry"
        );
    });
    run(Command::new(&psql).args([&admin, "-c", &format!("DROP DATABASE {name} WITH (FORCE)")]));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn key_der(pem_text: &[u8]) -> PrivateKeyDer<'static> {
    let block = pem::parse(pem_text).unwrap();
    assert_eq!(block.tag(), "PRIVATE KEY");
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(block.into_contents()))
}

fn cert_der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from(
        pem::parse(std::fs::read(path).unwrap())
            .unwrap()
            .into_contents(),
    )
}

/// A TLS server thread on 127.0.0.1 that accepts forever; each handshake's outcome is sent
/// back. It lives until the test process ends.
fn serve(config: Arc<ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            let mut tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), sock);
            let mut ok = true;
            while tls.conn.is_handshaking() {
                if tls.conn.complete_io(&mut tls.sock).is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                let _ = tls.write_all(b"welcome");
                tls.conn.send_close_notify();
                let _ = tls.conn.complete_io(&mut tls.sock);
            }
        }
    });
    port
}

/// One mTLS handshake; Ok(what the server said) or the error.
fn connect(
    port: u16,
    root: &CertificateDer<'static>,
    cert: &CertificateDer<'static>,
    key: &Path,
) -> Result<Vec<u8>, String> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(RevocationCheckingVerifier::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert.clone()], key_der(&std::fs::read(key).unwrap()))
        .unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let conn = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

#[test]
fn cli_revocation_cuts_the_next_handshake_of_a_running_server_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_ok(&mut ironroot(dir, &["ca", "init"]));
    run_ok(&mut ironroot(dir, &["device", "add", "dev-live"]));
    let (key, csr_path) = csr(dir, "live", "/CN=dev-live", "P-256");
    let leaf = dir.join("live.crt");
    run_ok(&mut ironroot(
        dir,
        &[
            "ca",
            "issue",
            "--device",
            "dev-live",
            "--csr",
            csr_path.to_str().unwrap(),
            "--out",
            leaf.to_str().unwrap(),
        ],
    ));

    // The "server": the identity service on the same data directory, following the feed.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let calls: Arc<Mutex<Vec<(Serial, Instant)>>> = Arc::default();
    let calls2 = Arc::clone(&calls);
    let service: IdentityService = runtime.block_on(async {
        let ca_dir = CaDirectory::new(dir);
        let passphrase = std::fs::read(dir.join("pki/online-passphrase")).unwrap();
        let ca = ca_dir
            .open_online(
                &OnlineSecrets {
                    passphrase: Some(Passphrase::new(passphrase).unwrap()),
                    pkcs11_pin: None,
                },
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let store = ironroot_store::Store::open_data_dir(dir).await.unwrap();
        let audit = ironroot_audit::Audit::open_store(&store, dir)
            .await
            .unwrap();
        IdentityService::open(ca, store, Arc::new(audit), IdentityOptions::new(dir))
            .await
            .unwrap()
    });
    // follow_changes spawns on the runtime it is called in.
    let _guard = runtime.enter();
    let _follower =
        service.follow_changes(move |s| calls2.lock().unwrap().push((s.clone(), Instant::now())));
    let verifier = RevocationCheckingVerifier::new(
        &[service.ca().root().clone()],
        service.ca().device_issuers(),
        service.revocations(),
    )
    .unwrap();
    let server_key = SoftwareKey::generate().unwrap();
    let server_cert = service
        .ca()
        .issuing()
        .issue_server(
            &SubjectKey::p256(server_key.public_key()).unwrap(),
            &[ServerName::parse("localhost").unwrap()],
            &IssuancePolicy::default(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    let config = ServerConfig::builder_with_provider(RevocationCheckingVerifier::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![
                server_cert.der().clone(),
                service.ca().issuing().certificate().der().clone(),
            ],
            key_der(server_key.to_pkcs8_pem().unwrap().as_bytes()),
        )
        .unwrap();
    let port = serve(Arc::new(config));
    let root = service.ca().root().der().clone();
    let cert = cert_der(&leaf);

    assert_eq!(
        connect(port, &root, &cert, &key).expect("good certificate is accepted"),
        b"welcome"
    );

    // Revoke in another process while the server keeps running.
    let serial = serial_of(&leaf);
    run_ok(&mut ironroot(dir, &["ca", "revoke", "--serial", &serial]));
    let revoked_at = Instant::now();
    let mut refused_after = None;
    while revoked_at.elapsed() < Duration::from_secs(3) {
        if connect(port, &root, &cert, &key).is_err() {
            refused_after = Some(revoked_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let lag = refused_after.expect("revoked certificate still accepted after 3 s");
    eprintln!("CLI revocation → handshake refused after {lag:?}");
    assert!(lag < Duration::from_secs(1), "took {lag:?}");
    let serial = Serial::from_hex(&serial).unwrap();
    assert!(service.revocations().is_revoked(&serial));
    assert!(
        calls.lock().unwrap().iter().any(|(s, _)| *s == serial),
        "the callback (broker kick) was called for the serial"
    );
}
