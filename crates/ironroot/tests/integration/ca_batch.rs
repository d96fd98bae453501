//! `ironroot ca issue --csr-dir --out-dir` (issue 12, defect 6): one CA unlock for a batch of
//! CSRs made by `openssl req`; a bad CSR and a CSR for an unknown device are reported in the
//! JSON summary without stopping the batch, the exit code says that some failed, every issued
//! certificate passes `openssl verify`, and the registry and the audit log hold each one.

use std::path::Path;
use std::process::Command;

use ironroot_testkit::{run, run_ok, tool};

fn ironroot(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env(
            "IRONROOT_ROOT_PASSPHRASE",
            "root passphrase for the batch test",
        )
        .env("IRONROOT_DATA_DIR", data_dir);
    cmd
}

fn openssl_csr(dir: &Path, device: &str, ext: &str) {
    run_ok(
        Command::new(tool("openssl"))
            .args(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:P-256")
            .arg("-keyout")
            .arg(dir.join(format!("{device}.key")))
            .args(["-subj", &format!("/CN={device}"), "-out"])
            .arg(dir.join(format!("{device}.{ext}"))),
    );
}

fn batch(data: &Path, csrs: &Path, certs: &Path) -> std::process::Output {
    run(&mut ironroot(
        data,
        &[
            "ca",
            "issue",
            "--csr-dir",
            csrs.to_str().unwrap(),
            "--out-dir",
            certs.to_str().unwrap(),
        ],
    ))
}

#[test]
fn batch_issue_reports_bad_csrs_in_the_summary_and_openssl_verifies_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let csrs = tmp.path().join("csrs");
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&csrs).unwrap();
    run_ok(&mut ironroot(&data, &["ca", "init"]));
    let good = ["fab-0001", "fab-0002", "fab-0003", "fab-0004"];
    for (i, device) in good.iter().enumerate() {
        run_ok(&mut ironroot(&data, &["device", "add", device]));
        openssl_csr(&csrs, device, if i % 2 == 0 { "csr" } else { "pem" });
    }
    run_ok(&mut ironroot(&data, &["device", "add", "fab-bad"]));
    std::fs::write(
        csrs.join("fab-bad.csr"),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    openssl_csr(&csrs, "fab-unregistered", "csr");
    std::fs::write(csrs.join("notes.txt"), "not a CSR, ignored").unwrap();

    let out = batch(&data, &csrs, &certs);
    assert!(
        !out.status.success(),
        "some CSRs failed: the exit code says so"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(summary["issued"], 4, "{summary}");
    assert_eq!(summary["failed"], 2, "{summary}");
    assert!(summary["seconds"].as_f64().unwrap() > 0.0);
    assert!(summary["per_second"].as_f64().unwrap() > 0.0);
    let failures = summary["failures"].as_array().unwrap();
    let failed: Vec<&str> = failures
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["fab-bad.csr", "fab-unregistered.csr"], "{summary}");
    assert!(
        failures[0]["error"]
            .as_str()
            .unwrap()
            .contains("certificate request rejected"),
        "{summary}"
    );
    assert!(
        failures[1]["error"]
            .as_str()
            .unwrap()
            .contains("unknown device"),
        "{summary}"
    );
    assert!(!certs.join("fab-bad.crt.pem").exists());
    assert!(!certs.join("fab-unregistered.crt.pem").exists());

    // Every issued certificate verifies with openssl against the written chain, names its
    // device, is in the registry (device provisioned) and in the audit log.
    let chain = certs.join("chain.pem");
    for device in good {
        let cert = certs.join(format!("{device}.crt.pem"));
        let out = run_ok(
            Command::new(tool("openssl"))
                .arg("verify")
                .arg("-CAfile")
                .arg(&chain)
                .arg(&cert),
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
        let out = run_ok(
            Command::new(tool("openssl"))
                .args(["x509", "-noout", "-subject", "-in"])
                .arg(&cert),
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("CN = {device}")));
        let shown = run_ok(&mut ironroot(&data, &["device", "show", device]));
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.contains("state:        provisioned"), "{shown}");
        assert!(shown.contains("operational active"), "{shown}");
        let audit = run_ok(&mut ironroot(
            &data,
            &[
                "audit",
                "show",
                "--json",
                "--type",
                "cert.issued",
                "--device",
                device,
            ],
        ));
        let audit = String::from_utf8_lossy(&audit.stdout);
        assert!(audit.contains("\"manual\""), "{audit}");
    }
    // The refused CSR is audited as denied; the log verifies.
    let audit = run_ok(&mut ironroot(
        &data,
        &["audit", "show", "--json", "--device", "fab-bad"],
    ));
    assert!(
        String::from_utf8_lossy(&audit.stdout).contains("denied"),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    run_ok(&mut ironroot(&data, &["audit", "verify"]));

    // The same path accepts a clean directory: exit code 0.
    let clean = tmp.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    run_ok(&mut ironroot(&data, &["device", "add", "fab-0005"]));
    openssl_csr(&clean, "fab-0005", "csr");
    let out = batch(&data, &clean, &certs);
    assert!(out.status.success(), "{out:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["issued"], 1);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["failures"].as_array().unwrap().len(), 0);
}

/// `--factory` with `--csr-dir`: factory credentials for a line of manufactured devices, the
/// factory chain written beside them; a device that already enrolled gets none (reported in
/// the summary), the others still do.
#[test]
fn factory_batch_issues_factory_credentials_for_manufactured_devices_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let csrs = tmp.path().join("csrs");
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&csrs).unwrap();
    run_ok(&mut ironroot(&data, &["ca", "init"]));
    for device in ["line-0001", "line-0002", "line-done"] {
        run_ok(&mut ironroot(&data, &["device", "add", device]));
        openssl_csr(&csrs, device, "csr");
    }
    // line-done already has its operational certificate (provisioned).
    run_ok(&mut ironroot(
        &data,
        &[
            "ca",
            "issue",
            "--device",
            "line-done",
            "--csr",
            csrs.join("line-done.csr").to_str().unwrap(),
            "--out",
            tmp.path().join("line-done.crt.pem").to_str().unwrap(),
        ],
    ));
    let mut cmd = ironroot(
        &data,
        &[
            "ca",
            "issue",
            "--factory",
            "--csr-dir",
            csrs.to_str().unwrap(),
            "--out-dir",
            certs.to_str().unwrap(),
        ],
    );
    let out = run(&mut cmd);
    assert!(
        !out.status.success(),
        "line-done was refused: exit code says so"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["issued"], 2, "{summary}");
    assert_eq!(summary["failures"][0]["file"], "line-done.csr", "{summary}");
    assert!(
        summary["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot issue a factory certificate"),
        "{summary}"
    );
    let chain = certs.join("chain.pem");
    assert!(
        std::fs::read_to_string(&chain)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    for device in ["line-0001", "line-0002"] {
        let cert = certs.join(format!("{device}.crt.pem"));
        let out = run_ok(
            Command::new(tool("openssl"))
                .args(["verify", "-purpose", "sslclient", "-CAfile"])
                .arg(&chain)
                .arg(&cert),
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
        let out = run_ok(
            Command::new(tool("openssl"))
                .args(["x509", "-noout", "-issuer", "-ext", "subjectAltName", "-in"])
                .arg(&cert),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ironroot Factory CA"), "{text}");
        assert!(
            text.contains(&format!("urn:ironroot:bootstrap:{device}")),
            "{text}"
        );
        let shown = run_ok(&mut ironroot(&data, &["device", "show", device]));
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.contains("state:        manufactured"), "{shown}");
        assert!(shown.contains("factory active"), "{shown}");
    }
}
