//! `ironroot demo`, run as a newcomer runs it: it must complete, and each refusal it shows
//! must really have been a refusal.

use std::process::Command;

#[test]
fn demo_runs_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_ironroot"))
        .args(["demo", "--dir"])
        .arg(&demo_dir)
        .output()
        .expect("run ironroot demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // Firmware: the tampered copy was refused by verification.
    let tamper = stdout
        .split("$ ironroot firmware verify -k root.pem app-2.tampered")
        .nth(1)
        .expect("the tamper step ran");
    let tamper_step = tamper.split("\n$ ").next().unwrap();
    assert!(
        !tamper_step.contains("correctly validated"),
        "{tamper_step}"
    );
    assert!(stderr.contains("image hash mismatch"), "{stderr}");
    // Secure boot: 2.0.0 was confirmed and the downgrade refused.
    assert!(
        stdout.contains("security counter 1 is below the device's counter 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("booted: primary slot, version 2.0.0"),
        "{stdout}"
    );
    // Enrollment, then least privilege on MQTT.
    assert!(
        stdout.contains("enrolled: certificate for demo-sensor-1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refused: HTTP 401"),
        "replayed token: {stdout}"
    );
    for line in [
        "subscribe devices/demo-sensor-1/commands      -> accepted",
        "publish devices/demo-sensor-1/telemetry       -> accepted",
        "publish devices/other-device/telemetry        -> refused (NotAuthorized)",
        "subscribe #                                   -> refused (NotAuthorized)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // Quarantine and release reached the live session.
    assert!(
        stdout.contains("device demo-sensor-1 is now quarantined"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("publish devices/demo-sensor-1/status ")
                && l.ends_with("-> accepted")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(
            |l| l.starts_with("publish devices/demo-sensor-1/telemetry ")
                && l.contains("-> refused (")
                && l.ends_with("ms after the command started)")
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("device demo-sensor-1 is now active"),
        "{stdout}"
    );
    // Revocation ended the live session, and the audit log verifies and holds the story.
    assert!(
        stdout.contains("the device's MQTT session ended"),
        "{stdout}"
    );
    assert!(stdout.contains("audit log intact"), "{stdout}");
    // The fleet: 200 simulated devices booted through secure boot and reported it, connected,
    // and every attack (the two firmware attacks among them) refused and audited.
    assert!(
        stdout.contains("booted firmware 1.0.0+0 and reported it: 200 devices"),
        "{stdout}"
    );
    assert!(
        stdout.contains("provisioned 200 / connected 200 of 200 devices"),
        "{stdout}"
    );
    let attack_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("attack "))
        .collect();
    assert_eq!(attack_lines.len(), 10, "{stdout}");
    for name in [
        "firmware_signed_with_wrong_key",
        "downgrade_image",
        "api_authentication_bypass",
        "api_injection",
    ] {
        assert!(
            attack_lines.iter().any(|l| l.contains(name)),
            "{name} missing:\n{stdout}"
        );
    }
    assert!(
        attack_lines
            .iter()
            .all(|l| l.ends_with("-> refused and audited")),
        "{stdout}"
    );
    assert!(stdout.contains("10 of 10 refused and audited"), "{stdout}");
    assert!(
        stdout.contains("200 of 200 devices booted 1.0.0+0 through secure boot"),
        "{stdout}"
    );
    for event in ["cert.issued", "mqtt.denied", "cert.revoked", "mqtt.kick"] {
        assert!(
            stdout.contains(event),
            "audit show lacks {event}:\n{stdout}"
        );
    }
    // The demo never touches anything outside its directory and refuses a non-empty one.
    let again = Command::new(env!("CARGO_BIN_EXE_ironroot"))
        .args(["demo", "--dir"])
        .arg(&demo_dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
