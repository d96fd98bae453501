//! Issue 14, end of life: `ironroot device decommission` of a connected `ironroot agent` (real
//! `ironroot up`, real MQTT over mutual TLS) sends a signed command; the agent verifies it
//! against its root, destroys its key in the element, removes its identity and exits 0; the
//! device ends revoked and decommissioned. Forged commands published on the device's commands
//! topic by a client the broker lets write there (what a compromised broker or back office
//! could do) are each ignored first: signed under a self-made ironroot CA, for another device,
//! expired, with a payload swapped under a genuine signature. A device that is offline is
//! retired all the same, and the answer says its keys could not be destroyed.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ironroot_device::command::{
    Command as DeviceCommand, CommandError, CommandKind, CommandVerifier, Envelope,
};
use ironroot_element::{Huk, KeyStorage, SecureElement as _, SoftwareElement};
use ironroot_pki::{CaDirectory, OnlineCa, OnlineSecrets, Passphrase};
use ironroot_testkit::mqtt::{self, Background, ClientTls};
use ironroot_testkit::{run_ok, tool};

use crate::support::{self, Proc, ironroot, spawn_lines, wait_for};

/// The online CA of a data directory, opened the way the server does.
fn online_ca(dir: &Path) -> OnlineCa {
    let pass = std::fs::read(dir.join("pki/online-passphrase")).unwrap();
    let secrets = OnlineSecrets {
        passphrase: Some(Passphrase::new(pass).unwrap()),
        pkcs11_pin: None,
    };
    CaDirectory::new(dir)
        .open_online(&secrets, time::OffsetDateTime::now_utc())
        .unwrap()
}

fn command(device: &str, issued_at: i64, expires_at: i64) -> DeviceCommand {
    DeviceCommand {
        kind: CommandKind::Decommission,
        device: device.into(),
        id: format!("test-{issued_at}-{device}"),
        issued_at,
        expires_at,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// An MQTT client certificate for `id` from the data directory's CA (openssl key, CSR,
/// `ironroot ca issue`), in `tmp/<id>.crt` and `tmp/<id>.key`.
fn client_certificate(tmp: &Path, dir: &Path, id: &str) {
    run_ok(&mut ironroot(dir, &["device", "add", id]));
    let (key, csr, crt) = (
        tmp.join(format!("{id}.key")),
        tmp.join(format!("{id}.csr")),
        tmp.join(format!("{id}.crt")),
    );
    run_ok(
        Command::new(tool("openssl"))
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={id}"),
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    run_ok(&mut ironroot(
        dir,
        &[
            "ca",
            "issue",
            "--device",
            id,
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            crt.to_str().unwrap(),
        ],
    ));
}

/// `mosquitto_pub` / `mosquitto_sub` as `id` (MQTT 5) against the node's broker.
fn mosquitto(tool_name: &str, tmp: &Path, dir: &Path, id: &str) -> Command {
    let port: u16 = std::fs::read_to_string(dir.join(ironroot_node::MQTT_ADDR_FILE))
        .unwrap()
        .trim()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let (ca, cert, key) = (
        dir.join("pki/root.crt.pem"),
        tmp.join(format!("{id}.crt")),
        tmp.join(format!("{id}.key")),
    );
    let tls = ClientTls {
        ca_file: &ca,
        cert: &cert,
        key: &key,
    };
    mqtt::mosquitto(tool_name, port, tls, id, true)
}

/// A back-office client, `backend-1`, with a policy that lets it publish on gw-1's commands
/// topic.
fn backend(tmp: &Path, dir: &Path) {
    client_certificate(tmp, dir, "backend-1");
    let policy = tmp.join("commander.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/gw-1/commands"}]}"#,
    )
    .unwrap();
    run_ok(&mut ironroot(
        dir,
        &[
            "policy",
            "create",
            "commander",
            "--file",
            policy.to_str().unwrap(),
        ],
    ));
    run_ok(&mut ironroot(
        dir,
        &["policy", "attach", "commander", "--device", "backend-1"],
    ));
}

/// Publishes `envelope` on gw-1's commands topic as backend-1 (QoS 1).
fn publish(tmp: &Path, dir: &Path, envelope: &[u8]) {
    let file = tmp.join("envelope.json");
    std::fs::write(&file, envelope).unwrap();
    run_ok(
        mosquitto("mosquitto_pub", tmp, dir, "backend-1")
            .args(["-t", "devices/gw-1/commands", "-q", "1", "-f"])
            .arg(&file),
    );
}

/// Starts `ironroot agent` for gw-1; its stderr lines arrive on the channel.
fn agent(tmp: &Path, dir: &Path) -> (Proc, mpsc::Receiver<String>) {
    let server = std::fs::read_to_string(dir.join("server.url")).unwrap();
    let mqtt = std::fs::read_to_string(dir.join(ironroot_node::MQTT_ADDR_FILE)).unwrap();
    spawn_lines(&mut ironroot(
        dir,
        &[
            "agent",
            "--device-id",
            "gw-1",
            "--server",
            server.trim(),
            "--mqtt",
            mqtt.trim(),
            "--ca-file",
            dir.join("pki/chain.pem").to_str().unwrap(),
            "--claim-token-file",
            tmp.join("token").to_str().unwrap(),
            "--state-dir",
            tmp.join("gw").to_str().unwrap(),
            "--telemetry-interval",
            "1s",
        ],
    ))
}

fn audit_json(dir: &Path, device: &str, kind: &str) -> Vec<serde_json::Value> {
    let out = run_ok(&mut ironroot(
        dir,
        &[
            "audit", "show", "--device", device, "--type", kind, "--json",
        ],
    ));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn decommission_destroys_the_keys_of_a_connected_agent_and_forged_commands_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let (_server, dir) = support::up_on_free_ports(tmp, &[]);
    run_ok(&mut ironroot(&dir, &["device", "add", "gw-1"]));
    let token = run_ok(&mut ironroot(&dir, &["device", "claim", "gw-1"])).stdout;
    std::fs::write(tmp.join("token"), token).unwrap();
    backend(tmp, &dir);
    let (mut gw, lines) = agent(tmp, &dir);
    wait_for(&lines, "connected", Duration::from_secs(60));
    let sealed = tmp.join("gw/element/identity-1.sealed");
    assert!(sealed.exists());

    // Forgeries, each refused for its own reason while the agent stays up with its key.
    let genuine = online_ca(&dir);
    let forger_dir = tmp.join("forger");
    std::fs::write(tmp.join("forger.pass"), "forger's own root passphrase\n").unwrap();
    run_ok(&mut ironroot(
        &forger_dir,
        &[
            "ca",
            "init",
            "--root-passphrase-file",
            tmp.join("forger.pass").to_str().unwrap(),
        ],
    ));
    let forger = online_ca(&forger_dir);
    let t = now();
    let sign = |ca: &OnlineCa, c: &DeviceCommand| ironroot_server::commands::sign(ca, c).unwrap();
    let mut swapped: Envelope =
        serde_json::from_slice(&sign(&genuine, &command("gw-1", t, t + 300))).unwrap();
    let other: Envelope =
        serde_json::from_slice(&sign(&genuine, &command("gw-1", t + 1, t + 300))).unwrap();
    swapped.payload = other.payload; // a genuine payload under another command's signature
    let forgeries = [
        (
            "self-made CA",
            sign(&forger, &command("gw-1", t, t + 300)),
            "not trusted",
        ),
        (
            "another device",
            sign(&genuine, &command("gw-2", t, t + 300)),
            "for device \"gw-2\"",
        ),
        // Its certificate expired with it: refused at the chain already.
        (
            "expired",
            sign(&genuine, &command("gw-1", t - 400, t - 100)),
            "xpired",
        ),
        (
            "bad signature",
            serde_json::to_vec(&swapped).unwrap(),
            "bad signature",
        ),
        (
            "not an envelope",
            b"{\"type\":\"decommission\",\"device\":\"gw-1\"}".to_vec(),
            "malformed",
        ),
    ];
    for (name, envelope, reason) in &forgeries {
        publish(tmp, &dir, envelope);
        let seen = wait_for(
            &lines,
            "ignored a message on the commands topic",
            Duration::from_secs(15),
        );
        let last = seen.last().unwrap();
        assert!(last.contains(reason), "{name}: {last}");
        assert!(
            sealed.exists(),
            "{name}: the key must survive a forged command"
        );
        assert!(
            gw.0.try_wait().unwrap().is_none(),
            "{name}: the agent must keep running"
        );
    }

    // The genuine decommission, through the operator CLI (the server's API).
    let out = run_ok(&mut ironroot(&dir, &["device", "decommission", "gw-1"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decommissioned device gw-1"), "{text}");
    assert!(
        text.contains("destroyed its keys and disconnected"),
        "{text}"
    );
    let seen = wait_for(
        &lines,
        "decommissioned by a signed command",
        Duration::from_secs(15),
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("signed decommission command")),
        "{seen:#?}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = gw.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the agent did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // The key is gone from the element: its sealed file is deleted and the label opens nothing.
    assert!(!sealed.exists());
    let element = SoftwareElement::new(
        Huk::load(&tmp.join("gw/huk")).unwrap(),
        KeyStorage::Dir(tmp.join("gw/element")),
    );
    assert!(element.open("identity-1").is_err());
    assert!(!tmp.join("gw/identity.json").exists());
    assert!(!tmp.join("gw/identity.pem").exists());
    // Revoked and retired in the registry; the command and its acknowledgement are audited.
    let show = run_ok(&mut ironroot(&dir, &["device", "show", "gw-1"]));
    assert!(String::from_utf8_lossy(&show.stdout).contains("decommissioned"));
    let events = audit_json(&dir, "gw-1", "device.command");
    assert_eq!(events.len(), 1, "{events:#?}");
    let d = &events[0]["details"];
    assert_eq!(d["keys_destroyed_confirmed"], "true", "{events:#?}");
    assert_eq!(d["delivered"], "true", "{events:#?}");
    assert_eq!(events[0]["outcome"], "success", "{events:#?}");

    // A device that is not connected is retired all the same; its keys are not destroyed.
    run_ok(&mut ironroot(&dir, &["device", "add", "gw-2"]));
    let out = run_ok(&mut ironroot(&dir, &["device", "decommission", "gw-2"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decommissioned device gw-2"), "{text}");
    assert!(text.contains("could not be destroyed remotely"), "{text}");
    let events = audit_json(&dir, "gw-2", "device.command");
    let d = &events[0]["details"];
    assert_eq!(d["reason"], "device_offline", "{events:#?}");
    assert_eq!(d["keys_destroyed_confirmed"], "false", "{events:#?}");
    assert_eq!(d["delivered"], "false", "{events:#?}");
}

/// A connected client that receives the command but does not act on it and stays connected
/// (not an ironroot agent; `mosquitto_sub -C 1` would count as an acknowledgement, since the
/// acknowledgement is the end of the session): the decommission waits its 5 s, retires the device anyway and says the keys were
/// not confirmed destroyed. The envelope it captured off the wire is what the server really
/// sends: the device-side verifier accepts it once for that device, then refuses the replay.
#[test]
fn a_device_that_ignores_the_command_is_retired_unconfirmed_and_the_captured_command_cannot_be_replayed()
 {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let (_server, dir) = support::up_on_free_ports(tmp, &[]);
    client_certificate(tmp, &dir, "gw-3");
    let mut sub = Background::spawn(mqtt::line_buffered(
        mosquitto("mosquitto_sub", tmp, &dir, "gw-3").args([
            "-t",
            "devices/gw-3/commands",
            "-q",
            "1",
            "-d",
        ]),
    ));
    assert!(
        sub.wait_line("received SUBACK", Duration::from_secs(15)),
        "gw-3 did not subscribe"
    );
    let started = Instant::now();
    let out = run_ok(&mut ironroot(&dir, &["device", "decommission", "gw-3"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decommissioned device gw-3"), "{text}");
    assert!(text.contains("did not disconnect in time"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let d = &audit_json(&dir, "gw-3", "device.command")[0]["details"];
    assert_eq!(d["delivered"], "true");
    assert_eq!(d["keys_destroyed_confirmed"], "false");
    assert_eq!(d["reason"], "no_disconnect");

    // Retired: the revocation cuts the silent client's session.
    let (_, lines) = sub.finish(Duration::from_secs(10));
    let envelope = lines
        .iter()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no envelope received: {lines:#?}"));
    let trust =
        ironroot_device::TrustAnchor::from_pem(&std::fs::read(dir.join("pki/chain.pem")).unwrap())
            .unwrap();
    let mut verifier = CommandVerifier::new(trust.anchors(), "gw-3");
    let ok = verifier.verify(envelope.as_bytes(), now()).unwrap();
    assert_eq!(ok.kind(), CommandKind::Decommission);
    assert_eq!(
        verifier.verify(envelope.as_bytes(), now()),
        Err(CommandError::Replayed(ok.id().to_owned()))
    );
    // The same genuine bytes mean nothing to another device.
    let mut other = CommandVerifier::new(trust.anchors(), "gw-1");
    assert_eq!(
        other.verify(envelope.as_bytes(), now()),
        Err(CommandError::WrongDevice("gw-3".into()))
    );
}
