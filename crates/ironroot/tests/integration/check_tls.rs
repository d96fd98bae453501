//! `ironroot check tls` against ironroot's own listeners and a deliberately weak
//! `openssl s_server`, judged by sslyze (PyPI; its own virtualenv, see
//! `.ci/requirements-sslyze.txt`): ironroot's API and MQTT listeners pass every check and sslyze
//! finds nothing below TLS 1.2, no CBC, no static RSA, no weak group, no compression, no
//! client renegotiation; on the weak server both ironroot and sslyze find the same weaknesses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironroot_testkit::{run, run_ok, sslyze, tool};
use serde_json::Value;

fn ironroot(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.env_remove("IRONROOT_ROOT_PASSPHRASE")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env("IRONROOT_DATA_DIR", data)
        .env("IRONROOT_API_ADDR", "127.0.0.1:0")
        .env("IRONROOT_MQTT_ADDR", "127.0.0.1:0");
    cmd
}

/// A child process killed on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA with device `dev-1` (certificate and key from openssl), then `ironroot up`; returns
/// the node, the API and MQTT addresses, and the device's certificate and key.
fn node(tmp: &Path) -> (Kill, String, String, PathBuf, PathBuf) {
    let data = tmp.join("data");
    std::fs::write(tmp.join("root.pass"), "correct horse battery staple\n").unwrap();
    run_ok(
        ironroot(&data)
            .args(["ca", "init", "--root-passphrase-file"])
            .arg(tmp.join("root.pass")),
    );
    run_ok(ironroot(&data).args(["device", "add", "dev-1"]));
    let (key, csr, crt) = (
        tmp.join("dev-1.key"),
        tmp.join("dev-1.csr"),
        tmp.join("dev-1.crt"),
    );
    run_ok(
        Command::new(tool("openssl"))
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=dev-1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    run_ok(
        ironroot(&data)
            .args(["ca", "issue", "--device", "dev-1", "--csr"])
            .arg(&csr)
            .arg("--out")
            .arg(&crt),
    );
    // sslyze opens several hundred connections within a second; the broker's per-IP connection
    // limit (a DoS control, 100/s, burst 200) would cut it off mid-scan, so it is off here.
    let config = tmp.join("ironroot.toml");
    std::fs::write(&config, "[mqtt.limits]\nconnection_rate_per_ip = \"off\"\n").unwrap();
    let log = std::fs::File::create(tmp.join("up.log")).unwrap();
    let child = Kill(
        ironroot(&data)
            .arg("up")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let (url_file, mqtt_file) = (data.join("server.url"), data.join("mqtt.addr"));
    let start = Instant::now();
    while !(url_file.exists() && mqtt_file.exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "ironroot up did not start:\n{}",
            std::fs::read_to_string(tmp.join("up.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let url = std::fs::read_to_string(&url_file).unwrap();
    let api = url.trim().trim_start_matches("https://").to_owned();
    let mqtt = std::fs::read_to_string(&mqtt_file)
        .unwrap()
        .trim()
        .to_owned();
    (child, api, mqtt, crt, key)
}

/// `ironroot check tls ARGS --json`: (exit success, report).
fn check_tls(args: &[&str]) -> (bool, Value) {
    let out = run(Command::new(env!("CARGO_BIN_EXE_ironroot"))
        .args(["check", "tls", "--json"])
        .args(args));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

fn status<'a>(report: &'a Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))["status"]
        .as_str()
        .unwrap()
}

fn assert_all_pass(report: &Value) {
    let bad: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "pass")
        .collect();
    assert!(bad.is_empty(), "{bad:#?}\n{report:#}");
    assert_eq!(report["grade"], "A");
}

/// sslyze's scan of `target` (extra args before it), as JSON.
fn sslyze_scan(tmp: &Path, name: &str, extra: &[&str], target: &str) -> Value {
    let json = tmp.join(format!("{name}.sslyze.json"));
    let out = run(Command::new(sslyze())
        .args([
            "--sslv2",
            "--sslv3",
            "--tlsv1",
            "--tlsv1_1",
            "--tlsv1_2",
            "--tlsv1_3",
            "--elliptic_curves",
            "--compression",
            "--reneg",
        ])
        .args(extra)
        .arg(format!("--json_out={}", json.display()))
        .arg(target));
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
        .unwrap_or_else(|_| {
            panic!(
                "sslyze wrote no JSON:\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
    let result = &doc["server_scan_results"][0];
    assert_eq!(result["scan_status"], "COMPLETED", "{result:#}");
    result["scan_result"].clone()
}

fn accepted<'a>(scan: &'a Value, key: &str) -> &'a Vec<Value> {
    scan[key]["result"]["accepted_cipher_suites"]
        .as_array()
        .unwrap_or_else(|| panic!("sslyze {key}: {:#}", scan[key]))
}

fn names(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .map(|c| c["cipher_suite"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// What the task's policy demands, as sslyze sees it.
fn assert_sslyze_clean(scan: &Value) {
    for key in [
        "ssl_2_0_cipher_suites",
        "ssl_3_0_cipher_suites",
        "tls_1_0_cipher_suites",
        "tls_1_1_cipher_suites",
    ] {
        assert!(accepted(scan, key).is_empty(), "{key}: {:#}", scan[key]);
    }
    let mut all = accepted(scan, "tls_1_2_cipher_suites").clone();
    all.extend(accepted(scan, "tls_1_3_cipher_suites").iter().cloned());
    assert!(!all.is_empty(), "sslyze saw no accepted suite at all");
    for c in &all {
        let name = c["cipher_suite"]["name"].as_str().unwrap();
        assert!(!name.contains("CBC"), "CBC suite accepted: {name}");
        assert!(
            name.starts_with("TLS_ECDHE_") || !name.contains("_WITH_"),
            "non-(EC)DHE suite accepted: {name}"
        );
        let key = &c["ephemeral_key"];
        let size = key["size"].as_u64().unwrap_or(0);
        match key["type_name"].as_str() {
            Some("ECDH") => assert!(size >= 253, "weak EC group: {key}"),
            Some("DH") => assert!(size >= 2048, "weak DH group: {key}"),
            other => panic!("no ephemeral key for {name}: {other:?}"),
        }
    }
    for curve in scan["elliptic_curves"]["result"]["supported_curves"]
        .as_array()
        .unwrap()
    {
        let name = curve["name"].as_str().unwrap();
        assert!(
            ["X25519", "X448", "secp256r1", "secp384r1", "secp521r1"].contains(&name),
            "weak or unexpected curve accepted: {name}"
        );
    }
    assert_eq!(
        scan["tls_compression"]["result"]["supports_compression"],
        false
    );
    let reneg = &scan["session_renegotiation"]["result"];
    assert_eq!(reneg["is_vulnerable_to_client_renegotiation_dos"], false);
    assert_eq!(reneg["supports_secure_renegotiation"], true, "{reneg:#}");
}

#[test]
fn ironroot_listeners_pass_every_check_and_sslyze_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let (_node, api, mqtt, crt, key) = node(tmp.path());
    let (crt_s, key_s) = (crt.to_str().unwrap(), key.to_str().unwrap());

    let (ok, report) = check_tls(&[&api]);
    assert!(ok, "{report:#}");
    assert_all_pass(&report);
    assert_eq!(
        report["protocols"],
        serde_json::json!(["TLSv1.2", "TLSv1.3"])
    );

    // MQTT without a client certificate: every check passes, and mTLS is reported.
    let (ok, report) = check_tls(&[&mqtt]);
    assert!(ok, "{report:#}");
    assert_all_pass(&report);
    assert_eq!(report["client_certificate"], "required", "{report:#}");
    // With the device certificate the full handshake completes.
    let (ok, report) = check_tls(&[&mqtt, "--cert", crt_s, "--key", key_s]);
    assert!(ok, "{report:#}");
    assert_all_pass(&report);
    assert_eq!(report["client_certificate"], "requested", "{report:#}");

    // A certificate from another CA is refused by the broker, and the grader says so.
    let (other_crt, other_key) = (tmp.path().join("other.crt"), tmp.path().join("other.key"));
    run_ok(
        Command::new(tool("openssl"))
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=dev-1",
            ])
            .args([
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-keyout",
            ])
            .arg(&other_key)
            .arg("-out")
            .arg(&other_crt),
    );
    let (ok, report) = check_tls(&[
        &mqtt,
        "--cert",
        other_crt.to_str().unwrap(),
        "--key",
        other_key.to_str().unwrap(),
    ]);
    assert!(!ok, "{report:#}");
    assert_eq!(status(&report, "handshake"), "fail", "{report:#}");

    assert_sslyze_clean(&sslyze_scan(tmp.path(), "api", &[], &api));
    assert_sslyze_clean(&sslyze_scan(
        tmp.path(),
        "mqtt",
        &["--cert", crt_s, "--key", key_s],
        &mqtt,
    ));
}

#[test]
fn weak_openssl_server_fails_and_sslyze_sees_the_same_weaknesses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let openssl = tool("openssl");
    let (cert, key, dh) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("dh.pem"));
    run_ok(
        Command::new(&openssl)
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "90",
                "-subj",
                "/CN=localhost",
            ])
            .args(["-newkey", "rsa:2048", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    run_ok(
        Command::new(&openssl)
            .args(["genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt"])
            .args(["dh_paramgen_prime_len:1024", "-out"])
            .arg(&dh),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let _server = Kill(
        Command::new(&openssl)
            .args(["s_server", "-www", "-accept", &addr, "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .args([
                "-cipher",
                "ALL:@SECLEVEL=0",
                "-groups",
                "secp224r1:P-256:X25519",
            ])
            .arg("-dhparam")
            .arg(&dh)
            .arg("-legacy_renegotiation")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (ok, report) = check_tls(&[&addr]);
    assert!(!ok, "a failing check must fail the exit status: {report:#}");
    assert_eq!(report["grade"], "F");
    for id in [
        "protocol.tls1_0",
        "protocol.tls1_1",
        "cipher.cbc",
        "cipher.static_rsa",
        "group.weak_ec",
        "group.weak_dh",
    ] {
        assert_eq!(status(&report, id), "fail", "{id}: {report:#}");
    }
    assert_eq!(status(&report, "compression"), "pass");

    let scan = sslyze_scan(dir, "weak", &[], &addr);
    // Protocols: sslyze accepts suites at exactly the versions ironroot reports.
    for (key, version) in [
        ("ssl_3_0_cipher_suites", "SSLv3"),
        ("tls_1_0_cipher_suites", "TLSv1.0"),
        ("tls_1_1_cipher_suites", "TLSv1.1"),
        ("tls_1_2_cipher_suites", "TLSv1.2"),
        ("tls_1_3_cipher_suites", "TLSv1.3"),
    ] {
        let ours = report["protocols"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == version);
        assert_eq!(!accepted(&scan, key).is_empty(), ours, "{version}");
        // Suites: on every suite ironroot's catalog knows, both agree exactly.
        let theirs = names(accepted(&scan, key));
        let ours: BTreeSet<String> = report["cipher_suites"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["protocol"] == version)
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        let known: BTreeSet<String> = ironroot_tlscheck_catalog();
        let theirs_known: BTreeSet<String> = theirs.intersection(&known).cloned().collect();
        assert_eq!(ours, theirs_known, "{version}");
    }
    let tls12 = accepted(&scan, "tls_1_2_cipher_suites");
    assert!(names(tls12).iter().any(|n| n.contains("CBC")));
    assert!(names(tls12).iter().any(|n| n.starts_with("TLS_RSA_WITH_")));
    assert!(
        tls12
            .iter()
            .any(|c| c["ephemeral_key"]["type_name"] == "DH" && c["ephemeral_key"]["size"] == 1024),
        "sslyze sees the 1024-bit DH prime"
    );
    // sslyze's client cannot offer secp224r1, so it does not list it; openssl s_client (a
    // third oracle) confirms what ironroot reports.
    assert!(
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "secp224r1")
    );
    let out = run_ok(
        Command::new(&openssl)
            .args([
                "s_client",
                "-connect",
                &addr,
                "-tls1_2",
                "-groups",
                "secp224r1",
            ])
            .args(["-cipher", "ECDHE:@SECLEVEL=0"])
            .stdin(Stdio::null()),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("secp224r1, 224 bits"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The suite names ironroot's probes offer (from `ironroot check tls`'s own catalog, via the
/// library the binary uses).
fn ironroot_tlscheck_catalog() -> BTreeSet<String> {
    ironroot_tlscheck::catalog::TLS13_SUITES
        .iter()
        .chain(ironroot_tlscheck::catalog::LEGACY_SUITES)
        .map(|s| s.name.to_owned())
        .collect()
}
