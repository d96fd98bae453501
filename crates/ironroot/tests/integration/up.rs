//! `ironroot up` end to end: first start creates the CA and the admin token, operator commands
//! reach the server through the token, a device enrolls with curl (EST + claim token), SIGTERM
//! stops the server cleanly.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironroot_testkit::{run_ok, tool};

fn ironroot(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env_remove("IRONROOT_ROOT_PASSPHRASE")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env("IRONROOT_DATA_DIR", data_dir);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn up_enroll_with_curl_and_stop_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(tmp.path().join("up.log")).unwrap();
    let mut child = ironroot(&dir, &["up", "--api-addr", &addr])
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url_file = dir.join("server.url");
    let start = Instant::now();
    while !url_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "ironroot up exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let printed = std::fs::read_to_string(tmp.path().join("up.log")).unwrap();
    assert!(printed.contains("root.key.enc"), "{printed}");
    assert!(printed.contains("OFFLINE"), "{printed}");
    assert!(printed.contains("passphrase (shown ONCE"), "{printed}");
    let url = std::fs::read_to_string(&url_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(url, format!("https://127.0.0.1:{port}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Operator commands go through the server (found via server.url + admin.token).
    let out = run_ok(&mut ironroot(
        &dir,
        &[
            "device", "add", "pump-1", "--group", "site-a", "--attr", "loc=b2",
        ],
    ));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("via {url}")));
    let csv = tmp.path().join("fleet.csv");
    std::fs::write(&csv, "id,groups\npump-2,site-a\npump-3,site-a\n").unwrap();
    let out = run_ok(&mut ironroot(
        &dir,
        &["device", "import", csv.to_str().unwrap()],
    ));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 device(s)"));
    let out = run_ok(&mut ironroot(
        &dir,
        &["device", "claim", "pump-1", "--ttl", "10m"],
    ));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        token.len(),
        43,
        "256-bit token in URL-safe base64: {token:?}"
    );

    // The device: key + CSR with openssl, enroll with curl exactly as the README shows.
    let openssl = tool("openssl");
    let key = tmp.path().join("pump-1.key");
    let csr = tmp.path().join("pump-1.csr");
    run_ok(Command::new(&openssl).args([
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
        "/CN=pump-1",
        "-outform",
        "DER",
        "-out",
        csr.to_str().unwrap(),
    ]));
    let b64 = tmp.path().join("pump-1.b64");
    run_ok(Command::new(&openssl).args([
        "base64",
        "-in",
        csr.to_str().unwrap(),
        "-out",
        b64.to_str().unwrap(),
    ]));
    let chain = dir.join("pki").join("chain.pem");
    let out = run_ok(Command::new(tool("curl")).args([
        "-sS",
        "--fail",
        "--cacert",
        chain.to_str().unwrap(),
        "--data-binary",
        &format!("@{}", b64.display()),
        "-H",
        "Content-Type: application/pkcs10",
        "-u",
        &format!("pump-1:{token}"),
        &format!("{url}/.well-known/est/simpleenroll"),
    ]));
    let p7 = tmp.path().join("pump-1.p7.b64");
    std::fs::write(&p7, &out.stdout).unwrap();
    let der = tmp.path().join("pump-1.p7");
    run_ok(Command::new(&openssl).args([
        "base64",
        "-d",
        "-in",
        p7.to_str().unwrap(),
        "-out",
        der.to_str().unwrap(),
    ]));
    let out = run_ok(Command::new(&openssl).args([
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-print_certs",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("subject=CN = pump-1"));

    let out = run_ok(&mut ironroot(&dir, &["device", "show", "pump-1"]));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("state:        provisioned"), "{shown}");
    assert!(shown.contains("operational active"), "{shown}");
    let out = run_ok(&mut ironroot(
        &dir,
        &["device", "list", "--group", "site-a"],
    ));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 device(s)"));
    let out = run_ok(&mut ironroot(&dir, &["device", "revoke", "pump-1"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked device pump-1 (1 certificate(s)")
    );
    run_ok(&mut ironroot(&dir, &["device", "decommission", "pump-1"]));

    // A wrong token is refused by the server.
    let out = ironroot(&dir, &["device", "list"])
        .env("IRONROOT_ADMIN_TOKEN", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));

    // SIGTERM: clean shutdown, server.url removed.
    run_ok(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no clean shutdown after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    assert!(!url_file.exists());

    // Offline mode still works without a server.
    let out = run_ok(&mut ironroot(&dir, &["device", "show", "pump-2"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("state:        manufactured"));
    let out = ironroot(&dir, &["device", "claim", "pump-2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the running server"));
}
