//! `ironroot agent` as a long-running process against a real `ironroot up`: it enrolls with a
//! claim token and connects; it survives a restart of the server (HTTPS and broker) and
//! reconnects on its own; restarted itself, it resumes from its state directory with the key
//! sealed in its element (no second enrollment: the claim token was single-use).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use ironroot_testkit::run_ok;

use crate::support::{self, Proc, free_port, ironroot, spawn_lines, wait_for};

fn up(dir: &Path, api: u16, mqtt: u16, log: &Path) -> Proc {
    up_with(dir, api, mqtt, log, &[])
}

fn up_with(dir: &Path, api: u16, mqtt: u16, log: &Path, extra: &[&str]) -> Proc {
    let (api, mqtt) = (format!("127.0.0.1:{api}"), format!("127.0.0.1:{mqtt}"));
    let mut args = vec!["--api-addr", &api, "--mqtt-addr", &mqtt];
    args.extend_from_slice(extra);
    support::up(dir, &args, log)
}

/// Starts the agent; its stderr lines arrive on the returned channel.
fn agent(tmp: &Path, dir: &Path, api: u16, mqtt: u16) -> (Proc, mpsc::Receiver<String>) {
    agent_with(tmp, dir, api, mqtt, &[], &[])
}

/// Starts the agent with `extra` arguments and `env`.
fn agent_with(
    tmp: &Path,
    dir: &Path,
    api: u16,
    mqtt: u16,
    extra: &[&str],
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> (Proc, mpsc::Receiver<String>) {
    let mut cmd = ironroot(
        dir,
        &[
            "agent",
            "--device-id",
            "gw-1",
            "--server",
            &format!("https://127.0.0.1:{api}"),
            "--mqtt",
            &format!("127.0.0.1:{mqtt}"),
            "--ca-file",
            dir.join("pki/chain.pem").to_str().unwrap(),
            "--claim-token-file",
            tmp.join("token").to_str().unwrap(),
            "--state-dir",
            tmp.join("gw").to_str().unwrap(),
            "--telemetry-interval",
            "1s",
        ],
    );
    cmd.args(extra).envs(env.iter().cloned());
    spawn_lines(&mut cmd)
}

fn audit_count(dir: &Path, kind: &str) -> usize {
    let out = run_ok(&mut ironroot(
        dir,
        &[
            "audit", "show", "--device", "gw-1", "--type", kind, "--json",
        ],
    ));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn agent_enrolls_survives_a_server_restart_and_resumes_after_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (api, mqtt) = (free_port(), free_port());
    let log = tmp.path().join("up.log");
    let mut server = up(&dir, api, mqtt, &log);
    run_ok(&mut ironroot(&dir, &["device", "add", "gw-1"]));
    let token = run_ok(&mut ironroot(&dir, &["device", "claim", "gw-1"])).stdout;
    std::fs::write(tmp.path().join("token"), token).unwrap();

    // A device without a claim token and without an identity is refused with a clear message.
    let out = ironroot(
        &dir,
        &[
            "agent",
            "--device-id",
            "gw-1",
            "--server",
            "https://127.0.0.1:1",
            "--mqtt",
            "127.0.0.1:1",
            "--ca-file",
            dir.join("pki/chain.pem").to_str().unwrap(),
            "--state-dir",
            tmp.path().join("empty").to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--claim-token-file"));

    let (mut gw, lines) = agent(tmp.path(), &dir, api, mqtt);
    wait_for(&lines, "enrolled", Duration::from_secs(30));
    wait_for(&lines, "connected", Duration::from_secs(30));
    // The key is sealed in the element; the state directory holds no plaintext key.
    let sealed = tmp.path().join("gw/element/identity-1.sealed");
    assert!(sealed.exists());
    let blob = std::fs::read(&sealed).unwrap();
    assert!(!String::from_utf8_lossy(&blob).contains("PRIVATE KEY"));
    assert!(tmp.path().join("gw/identity.pem").exists());

    // The whole server (HTTPS and broker) restarts; the agent reconnects by itself.
    server.stop();
    let lost = wait_for(&lines, "failed", Duration::from_secs(30));
    assert!(
        lost.iter().any(|l| l.contains("retrying with backoff")),
        "{lost:#?}"
    );
    let _server = up(&dir, api, mqtt, &log);
    wait_for(&lines, "connected", Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(2));
    assert!(audit_count(&dir, "mqtt.connect") >= 2);

    // The agent itself restarts: it resumes with its sealed key (the claim token is spent, so
    // a second enrollment would be refused; there is none).
    gw.stop();
    let (_gw, lines) = agent(tmp.path(), &dir, api, mqtt);
    let seen = wait_for(&lines, "connected", Duration::from_secs(60));
    assert!(
        seen.iter()
            .any(|l| l.contains("resuming with key identity-1")),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|l| l.contains("enrolled")), "{seen:#?}");
    assert_eq!(audit_count(&dir, "device.provisioned"), 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(audit_count(&dir, "mqtt.connect") >= 3);
}

/// The same agent with its key in a TPM 2.0 (a real swtpm through tpm2-pkcs11): enrollment,
/// mutual TLS to the broker, and rotation (renewal of a one-minute certificate with a fresh key
/// generated in the TPM); nothing key-shaped is written to the state directory.
#[test]
fn agent_with_its_key_in_a_tpm_enrolls_connects_and_rotates() {
    let tpm = ironroot_testkit::tpm::SwTpm::start("device", "so-secret", "4711");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let config = tmp.path().join("ironroot.toml");
    std::fs::write(&config, "[api.enrollment]\ndevice_validity = \"60s\"\n").unwrap();
    let (api, mqtt) = (free_port(), free_port());
    let _server = up_with(
        &dir,
        api,
        mqtt,
        &tmp.path().join("up.log"),
        &["--config", config.to_str().unwrap()],
    );
    run_ok(&mut ironroot(&dir, &["device", "add", "gw-1"]));
    let token = run_ok(&mut ironroot(&dir, &["device", "claim", "gw-1"])).stdout;
    std::fs::write(tmp.path().join("token"), token).unwrap();
    let pin = tmp.path().join("pin");
    std::fs::write(&pin, "4711\n").unwrap();
    let module = ironroot_testkit::tpm::SwTpm::module();
    let (_gw, lines) = agent_with(
        tmp.path(),
        &dir,
        api,
        mqtt,
        &[
            "--pkcs11-module",
            module.to_str().unwrap(),
            "--pkcs11-token",
            "device",
            "--pkcs11-pin-file",
            pin.to_str().unwrap(),
        ],
        &tpm.env(),
    );
    let seen = wait_for(&lines, "enrolled", Duration::from_secs(60));
    assert!(
        seen.iter().any(|l| l.contains("keys in PKCS#11")),
        "{seen:#?}"
    );
    wait_for(&lines, "connected", Duration::from_secs(30));
    // Renewal at two thirds of 60 s, with a key generated in the TPM, then a new session.
    wait_for(&lines, "renewed", Duration::from_secs(75));
    wait_for(&lines, "connected", Duration::from_secs(30));
    assert_eq!(audit_count(&dir, "cert.renewed"), 1);
    assert!(audit_count(&dir, "mqtt.connect") >= 2);
    // No key material in the state directory: no element files, only the certificate and state.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path().join("gw"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["identity.json", "identity.pem"]);
}
