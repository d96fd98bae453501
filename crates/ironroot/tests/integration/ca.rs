//! `ironroot ca …` on a temporary data directory, judged by openssl.

use std::path::Path;
use std::process::{Command, Output};

use ironroot_testkit::{run, run_ok, tool};

fn ironroot(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.env_remove("IRONROOT_ROOT_PASSPHRASE")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env_remove("IRONROOT_PKCS11_PIN")
        .env("IRONROOT_DATA_DIR", data);
    cmd
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn init(tmp: &Path) -> String {
    let pass = tmp.join("root.pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let out = run_ok(
        ironroot(&tmp.join("data"))
            .args(["ca", "init", "--root-passphrase-file"])
            .arg(&pass),
    );
    stdout(&out)
}

fn verify(args: &[&Path], flags: &[&str], leaf: &Path) -> (bool, String) {
    let mut cmd = Command::new(tool("openssl"));
    cmd.arg("verify");
    cmd.arg("-CAfile").arg(args[0]);
    if let Some(crl) = args.get(1) {
        cmd.arg("-CRLfile").arg(crl);
    }
    cmd.args(flags).arg(leaf);
    let out = run(&mut cmd);
    (
        out.status.success(),
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn init_chain_crl_and_rotation_work_with_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let text = init(tmp.path());
    let pki = tmp.path().join("data/pki");
    for file in [
        "root.crt.pem",
        "root.key.enc",
        "intermediate-1.crt.pem",
        "intermediate-1.key.enc",
        "factory.crt.pem",
        "operator.key.pem",
        "online-passphrase",
    ] {
        assert!(
            text.contains(&pki.join(file).display().to_string()),
            "{file} not reported:\n{text}"
        );
        assert!(pki.join(file).exists(), "{file}");
    }
    assert!(text.contains("OFFLINE"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for secret in [
            "root.key.enc",
            "intermediate-1.key.enc",
            "operator.key.pem",
            "online-passphrase",
        ] {
            let mode = std::fs::metadata(pki.join(secret))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{secret}");
        }
    }
    // The root key file is not a plain key.
    let root_key = std::fs::read_to_string(pki.join("root.key.enc")).unwrap();
    assert!(root_key.starts_with("-----BEGIN IRONROOT ENCRYPTED PRIVATE KEY-----"));

    let chain = tmp.path().join("chain.pem");
    let crl = tmp.path().join("crl.pem");
    run_ok(
        ironroot(&tmp.path().join("data"))
            .args(["ca", "chain", "--out"])
            .arg(&chain),
    );
    run_ok(
        ironroot(&tmp.path().join("data"))
            .args(["ca", "crl", "--out"])
            .arg(&crl),
    );
    let operator = pki.join("operator.crt.pem");
    let (ok, out) = verify(
        &[&chain, &crl],
        &["-crl_check_all", "-purpose", "sslclient"],
        &operator,
    );
    assert!(ok, "{out}");

    // Server certificate for the HTTPS/MQTT listeners.
    let cert = tmp.path().join("server.pem");
    let key = tmp.path().join("server.key");
    run_ok(
        ironroot(&tmp.path().join("data"))
            .args([
                "ca",
                "server-cert",
                "--name",
                "localhost",
                "--name",
                "127.0.0.1",
                "--out-cert",
            ])
            .arg(&cert)
            .arg("--out-key")
            .arg(&key),
    );
    let (ok, out) = verify(
        &[&chain],
        &["-purpose", "sslserver", "-verify_hostname", "localhost"],
        &cert,
    );
    assert!(ok, "{out}");

    // Rotation: the chain now carries both generations; the old operator cert still verifies.
    let pass = tmp.path().join("root.pass");
    let out = run_ok(
        ironroot(&tmp.path().join("data"))
            .args([
                "ca",
                "rotate-intermediate",
                "--overlap-days",
                "30",
                "--root-passphrase-file",
            ])
            .arg(&pass),
    );
    assert!(
        stdout(&out).contains("intermediate-2.crt.pem"),
        "{}",
        stdout(&out)
    );
    run_ok(
        ironroot(&tmp.path().join("data"))
            .args(["ca", "chain", "--out"])
            .arg(&chain),
    );
    let chain_text = std::fs::read_to_string(&chain).unwrap();
    assert_eq!(
        chain_text.matches("BEGIN CERTIFICATE").count(),
        3,
        "{chain_text}"
    );
    run_ok(
        ironroot(&tmp.path().join("data"))
            .args(["ca", "crl", "--out"])
            .arg(&crl),
    );
    assert_eq!(
        std::fs::read_to_string(&crl)
            .unwrap()
            .matches("BEGIN X509 CRL")
            .count(),
        4,
        "one CRL per trusted intermediate (two), the factory CA's, the root's"
    );
    let (ok, out) = verify(&[&chain, &crl], &["-crl_check_all"], &operator);
    assert!(ok, "{out}");

    // Revoking generation 1 with the root: the operator certificate (issued by G1) fails
    // -crl_check_all with the new root CRL.
    run_ok(
        ironroot(&tmp.path().join("data"))
            .args([
                "ca",
                "revoke-intermediate",
                "--generation",
                "1",
                "--compromised",
                "--root-passphrase-file",
            ])
            .arg(&pass),
    );
    let old_chain = chain.clone();
    let crl_text = std::fs::read_to_string(pki.join("root.crl.pem")).unwrap();
    std::fs::write(
        tmp.path().join("root-crl.pem"),
        format!("{}{}", crl_text, std::fs::read_to_string(&crl).unwrap()),
    )
    .unwrap();
    let (ok, out) = verify(
        &[&old_chain, &tmp.path().join("root-crl.pem")],
        &["-crl_check_all"],
        &operator,
    );
    assert!(!ok && out.contains("revoked"), "{out}");
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // No passphrase given.
    let out = run(ironroot(&data).args(["ca", "init"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IRONROOT_ROOT_PASSPHRASE") && err.trim().lines().count() == 1,
        "{err}"
    );
    // Too short a passphrase, via the environment.
    let out = run(ironroot(&data)
        .args(["ca", "init"])
        .env("IRONROOT_ROOT_PASSPHRASE", "short"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too short"));
    // Nothing initialised: chain says what to do.
    let out = run(ironroot(&data).args(["ca", "chain"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ironroot ca init"));
    // Twice: refused, first CA intact.
    init(tmp.path());
    let before = std::fs::read(data.join("pki/root.crt.pem")).unwrap();
    let out = run(ironroot(&data)
        .args(["ca", "init"])
        .env("IRONROOT_ROOT_PASSPHRASE", "a long enough passphrase"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(data.join("pki/root.crt.pem")).unwrap(),
        before
    );
    // Wrong root passphrase on rotation: typed message, no secret echoed.
    let out = run(ironroot(&data)
        .args(["ca", "rotate-intermediate"])
        .env("IRONROOT_ROOT_PASSPHRASE", "not the right passphrase"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wrong passphrase") && !err.contains("not the right passphrase"),
        "{err}"
    );
}

#[test]
fn help_explains_the_commands() {
    let out = run_ok(Command::new(env!("CARGO_BIN_EXE_ironroot")).args(["ca", "--help"]));
    let text = stdout(&out);
    for cmd in [
        "init",
        "rotate-intermediate",
        "chain",
        "crl",
        "server-cert",
        "revoke-intermediate",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from help:\n{text}");
    }
}
