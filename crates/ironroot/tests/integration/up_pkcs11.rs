//! `ironroot up` with the online CA keys in a PKCS#11 token (SoftHSM2): the PIN comes from
//! `--pkcs11-pin-file` or `IRONROOT_PKCS11_PIN`, a device enrolls over EST with curl and
//! `openssl verify` accepts its certificate; a wrong PIN stops `up` with an error that names
//! the token login, never the PIN.
//!
//! Regression test for issue 12, defect 1 (`ServerConfig` had no PIN, so `up` could not
//! start on such a CA).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ironroot_testkit::{run_ok, tool};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "ironroot-up";
const PIN: &str = "86421357";
const WRONG_PIN: &str = "97531864";

/// A fresh SoftHSM2 token in `tmp`; returns the `SOFTHSM2_CONF` path.
fn softhsm_token(tmp: &Path) -> PathBuf {
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} is missing; run `bash .ci/run` once (installs softhsm2)"
    );
    let tokens = tmp.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    run_ok(
        Command::new(tool("softhsm2-util"))
            .env("SOFTHSM2_CONF", &conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                TOKEN,
                "--so-pin",
                "12345678",
                "--pin",
                PIN,
            ]),
    );
    conf
}

fn ironroot(data_dir: &Path, conf: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env_remove("IRONROOT_PKCS11_PIN")
        .env("IRONROOT_ROOT_PASSPHRASE", "root passphrase for the test")
        .env("SOFTHSM2_CONF", conf)
        .env("IRONROOT_DATA_DIR", data_dir)
        // A free MQTT port: the default 8883 may be held by another test running beside this one,
        // and `up` stops (removing server.url) when its broker cannot bind.
        .env("IRONROOT_MQTT_ADDR", "127.0.0.1:0");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `up` and waits for `server.url`; returns the child and the URL.
fn start_up(mut cmd: Command, dir: &Path, log: &Path) -> (Child, String) {
    let url_file = dir.join("server.url");
    let _ = std::fs::remove_file(&url_file);
    let out = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !url_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ironroot up exited early ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let url = std::fs::read_to_string(&url_file)
        .unwrap()
        .trim()
        .to_owned();
    (child, url)
}

fn stop(mut child: Child) {
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
}

/// Registers `device`, enrolls it over EST with openssl + curl, and checks the certificate
/// with `openssl verify -CAfile chain.pem`.
fn enroll_and_verify(dir: &Path, conf: &Path, tmp: &Path, url: &str, device: &str) {
    run_ok(&mut ironroot(dir, conf, &["device", "add", device]));
    let out = run_ok(&mut ironroot(dir, conf, &["device", "claim", device]));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let openssl = tool("openssl");
    let path = |ext: &str| tmp.join(format!("{device}.{ext}"));
    run_ok(Command::new(&openssl).args([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        path("key").to_str().unwrap(),
        "-subj",
        &format!("/CN={device}"),
        "-outform",
        "DER",
        "-out",
        path("csr").to_str().unwrap(),
    ]));
    run_ok(Command::new(&openssl).args([
        "base64",
        "-in",
        path("csr").to_str().unwrap(),
        "-out",
        path("b64").to_str().unwrap(),
    ]));
    let chain = dir.join("pki").join("chain.pem");
    let out = run_ok(Command::new(tool("curl")).args([
        "-sS",
        "--fail",
        "--cacert",
        chain.to_str().unwrap(),
        "--data-binary",
        &format!("@{}", path("b64").display()),
        "-H",
        "Content-Type: application/pkcs10",
        "-u",
        &format!("{device}:{token}"),
        &format!("{url}/.well-known/est/simpleenroll"),
    ]));
    std::fs::write(path("p7.b64"), &out.stdout).unwrap();
    run_ok(Command::new(&openssl).args([
        "base64",
        "-d",
        "-in",
        path("p7.b64").to_str().unwrap(),
        "-out",
        path("p7").to_str().unwrap(),
    ]));
    run_ok(Command::new(&openssl).args([
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        path("p7").to_str().unwrap(),
        "-print_certs",
        "-out",
        path("crt").to_str().unwrap(),
    ]));
    let out = run_ok(Command::new(&openssl).args([
        "verify",
        "-CAfile",
        chain.to_str().unwrap(),
        path("crt").to_str().unwrap(),
    ]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": OK"),
        "{out:?}"
    );
}

#[test]
fn up_with_intermediate_key_in_softhsm_takes_pin_from_file_and_env() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = softhsm_token(tmp.path());
    let dir = tmp.path().join("data");
    let pin_file = tmp.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    run_ok(&mut ironroot(
        &dir,
        &conf,
        &[
            "ca",
            "init",
            "--pkcs11-module",
            MODULE,
            "--pkcs11-token",
            TOKEN,
            "--pkcs11-pin-file",
            pin_file.to_str().unwrap(),
        ],
    ));
    // The online keys are in the token: no key file, no online passphrase on disk.
    assert!(!dir.join("pki").join("intermediate-1.key.enc").exists());
    assert!(!dir.join("pki").join("online-passphrase").exists());

    // Without a PIN, `up` says what is missing.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let out = ironroot(&dir, &conf, &["up", "--api-addr", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("IRONROOT_PKCS11_PIN"), "{stderr}");

    // A wrong PIN: `up` fails, the error names the login and does not contain the PIN.
    let out = ironroot(&dir, &conf, &["up", "--api-addr", &addr])
        .env("IRONROOT_PKCS11_PIN", WRONG_PIN)
        .output()
        .unwrap();
    assert!(!out.status.success(), "up started with a wrong PIN");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("C_Login"), "{text}");
    assert!(!text.contains(WRONG_PIN), "the PIN leaked: {text}");
    assert!(!dir.join("server.url").exists());

    // PIN from the file.
    let mut cmd = ironroot(
        &dir,
        &conf,
        &[
            "up",
            "--api-addr",
            &addr,
            "--pkcs11-pin-file",
            pin_file.to_str().unwrap(),
        ],
    );
    cmd.env("IRONROOT_PKCS11_PIN", WRONG_PIN); // the file wins over the variable
    let log = tmp.path().join("up-file.log");
    let (child, url) = start_up(cmd, &dir, &log);
    enroll_and_verify(&dir, &conf, tmp.path(), &url, "hsm-dev-1");
    stop(child);
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(!printed.contains(PIN), "the PIN was printed: {printed}");

    // PIN from the environment.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = ironroot(&dir, &conf, &["up", "--api-addr", &addr]);
    cmd.env("IRONROOT_PKCS11_PIN", PIN);
    let log = tmp.path().join("up-env.log");
    let (child, url) = start_up(cmd, &dir, &log);
    enroll_and_verify(&dir, &conf, tmp.path(), &url, "hsm-dev-2");
    stop(child);
}
