//! `ironroot simulate` against a real `ironroot up`: N virtual devices, each with its own key
//! in its own element and its own certificate, enroll over EST, connect over mutual-TLS MQTT and
//! send telemetry; the JSON report counts what the devices saw; then the attack scenario runs
//! and every attack must be refused and audited (checked again here through the audit API with
//! curl). The registry confirms enrollment independently of the simulator's own counters.

use ironroot_testkit::run_ok;

use crate::support::{ironroot, up_on_free_ports};

#[test]
fn simulate_enrolls_connects_and_reports_every_device() {
    let tmp = tempfile::tempdir().unwrap();
    let (_up, dir) = up_on_free_ports(tmp.path(), &[]);
    let out = run_ok(&mut ironroot(
        &dir,
        &[
            "simulate",
            "--devices",
            "40",
            "--messages",
            "3",
            "--interval",
            "50ms",
            "--prefix",
            "simt",
            "--scenario",
            "attacks",
            "--json",
        ],
    ));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["provisioned"], 40, "{report}");
    assert_eq!(report["connected"], 40, "{report}");
    assert_eq!(report["messages"], 120, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    // Every device powered on through secure boot and the server accepted its report.
    assert_eq!(report["booted"], 40, "{report}");
    assert_eq!(report["firmware_version"], "1.0.0+0", "{report}");
    let (p50, p99) = (
        report["p50_ms"].as_f64().unwrap(),
        report["p99_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99, "{report}");
    // Every attack was tried, refused, and found in the audit log.
    let attacks = report["attacks"].as_array().unwrap();
    let names: Vec<&str> = attacks
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for expected in [
        "cloned_certificate_used_twice",
        "publish_to_another_devices_topic",
        "self_signed_certificate_claiming_a_real_id",
        "replayed_claim_token",
        "csr_for_another_device_id",
        "reconnect_after_revocation",
        "firmware_signed_with_wrong_key",
        "downgrade_image",
        "api_authentication_bypass",
        "api_injection",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {report}");
    }
    for a in attacks {
        assert_eq!(a["refused"], true, "{a}");
        assert_eq!(a["audited"], true, "{a}");
    }
    // The audit API the simulator used is for operators only.
    let url = std::fs::read_to_string(dir.join("server.url")).unwrap();
    let out = ironroot_testkit::run(
        std::process::Command::new(ironroot_testkit::tool("curl")).args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            dir.join("pki/chain.pem").to_str().unwrap(),
            &format!("{}/api/v1/audit/events?type=mqtt.denied", url.trim()),
        ]),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
    let out = run_ok(
        std::process::Command::new(ironroot_testkit::tool("curl")).args([
            "-s",
            "--fail",
            "--cacert",
            dir.join("pki/chain.pem").to_str().unwrap(),
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            &format!(
                "{}/api/v1/audit/events?type=mqtt.denied&device=simt-atk-spoof",
                url.trim()
            ),
        ]),
    );
    let denied: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &denied["entries"][0];
    assert_eq!(
        entry["details"]["topic"], "devices/simt-atk-victim/telemetry",
        "{denied}"
    );
    assert_eq!(entry["outcome"], "denied", "{denied}");

    // The server kept each device's boot report: the measured firmware and its PCR.
    let curl_operator = |path: &str| {
        let out = run_ok(
            std::process::Command::new(ironroot_testkit::tool("curl")).args([
                "-s",
                "--fail",
                "--cacert",
                dir.join("pki/chain.pem").to_str().unwrap(),
                "-H",
                &format!("Authorization: Bearer {}", token.trim()),
                &format!("{}{path}", url.trim()),
            ]),
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let boot = curl_operator("/api/v1/devices/simt-00007/boot-report");
    assert_eq!(boot["report"]["firmware_version"], "1.0.0+0", "{boot}");
    assert_eq!(boot["report"]["trial"], false, "{boot}");
    assert_eq!(boot["report"]["pcr"].as_str().unwrap().len(), 64, "{boot}");
    // The firmware attack device took the genuine update (confirmed after its health check),
    // then refused both attack images, each audited with its reason.
    let boot = curl_operator("/api/v1/devices/simt-atk-firmware/boot-report");
    assert_eq!(boot["report"]["firmware_version"], "1.1.0+0", "{boot}");
    let refused =
        curl_operator("/api/v1/audit/events?type=firmware.refused&device=simt-atk-firmware");
    let reasons: Vec<&str> = refused["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["untrusted_key", "rollback"], "{refused}");
    // The device endpoint takes a device certificate, not an operator token.
    let out = ironroot_testkit::run(
        std::process::Command::new(ironroot_testkit::tool("curl")).args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            dir.join("pki/chain.pem").to_str().unwrap(),
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            "-H",
            "content-type: application/json",
            "--data",
            "{}",
            &format!("{}/api/v1/devices/simt-00007/boot-report", url.trim()),
        ]),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");

    // The registry agrees: each simulated device is enrolled with a certificate of its own.
    let out = run_ok(&mut ironroot(&dir, &["device", "show", "simt-00007"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("active") || text.contains("operational"),
        "{text}"
    );

    // The same path refuses a wrong operator token: nothing is provisioned.
    let out = ironroot(&dir, &["simulate", "--devices", "2", "--json"])
        .env("IRONROOT_ADMIN_TOKEN", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") || err.contains("unauthorized"), "{err}");
}
