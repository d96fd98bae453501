//! `ironroot mqtt serve` + `ironroot policy create/attach` + `ironroot ca issue/revoke`, each
//! its own process, judged by mosquitto clients: a policy change and a revocation made by the
//! offline CLI reach the running broker's live sessions within a second.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironroot_testkit::mqtt::{self, Background, ClientTls};
use ironroot_testkit::{run, run_ok, tool};

fn ironroot(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.env_remove("IRONROOT_ROOT_PASSPHRASE")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env("IRONROOT_DATA_DIR", data);
    cmd
}

struct Serve(Child);

impl Drop for Serve {
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

fn device(tmp: &Path, data: &Path, id: &str) {
    run_ok(ironroot(data).args(["device", "add", id]));
    run_ok(
        Command::new(tool("openssl"))
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-subj", &format!("/CN={id}")])
            .arg("-keyout")
            .arg(tmp.join(format!("{id}.key")))
            .arg("-out")
            .arg(tmp.join(format!("{id}.csr"))),
    );
    run_ok(
        ironroot(data)
            .args(["ca", "issue", "--device", id, "--csr"])
            .arg(tmp.join(format!("{id}.csr")))
            .arg("--out")
            .arg(tmp.join(format!("{id}.crt"))),
    );
}

fn client(tool_name: &str, tmp: &Path, data: &Path, port: u16, id: &str) -> Command {
    let (ca, cert, key) = (
        data.join("pki/root.crt.pem"),
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

/// The audit log once it holds every `needle` (≤ 10 s): broker events are recorded
/// asynchronously, shortly after the client observed them.
fn audit_log_with(data: &Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = run_ok(ironroot(data).args(["audit", "show"]));
        let log = String::from_utf8_lossy(&log.stdout).into_owned();
        let missing: Vec<&&str> = needles.iter().filter(|n| !log.contains(**n)).collect();
        if missing.is_empty() {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "audit log lacks {missing:?} 10 s on:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cli_policy_change_and_revocation_reach_a_running_broker() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let data = tmp.join("data");
    std::fs::write(tmp.join("root.pass"), "correct horse battery staple\n").unwrap();
    run_ok(
        ironroot(&data)
            .args(["ca", "init", "--root-passphrase-file"])
            .arg(tmp.join("root.pass")),
    );
    device(tmp, &data, "sensor-1");
    device(tmp, &data, "backend-1");

    // A policy with an unknown action is refused with the reason, and audited.
    std::fs::write(
        tmp.join("bad.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Pubilsh","Resource":"topic/a"}]}"#,
    )
    .unwrap();
    let bad = run(ironroot(&data)
        .args(["policy", "create", "bad", "--file"])
        .arg(tmp.join("bad.json")));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("iot:Pubilsh"));

    let port = free_port();
    let mut serve = Serve(
        ironroot(&data)
            .args(["mqtt", "serve", "--mqtt-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on"), "{line}");

    // Without a policy, backend-1 may not read other devices' telemetry.
    let denied = run(
        client("mosquitto_sub", tmp, &data, port, "backend-1").args([
            "-t",
            "devices/+/telemetry",
            "-C",
            "1",
            "-W",
            "2",
        ]),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&denied.stdout),
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(
        said.contains("denied"),
        "subscription granted without a policy: {:?} {said}",
        denied.status
    );

    std::fs::write(
        tmp.join("reader.json"),
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/+/telemetry"},
          {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/devices/*/telemetry"}]}"#,
    )
    .unwrap();
    run_ok(
        ironroot(&data)
            .args(["policy", "create", "telemetry-reader", "--file"])
            .arg(tmp.join("reader.json")),
    );
    run_ok(ironroot(&data).args(["policy", "attach", "telemetry-reader", "--group", "readers"]));
    let attached = Instant::now();
    run_ok(ironroot(&data).args([
        "policy",
        "attach",
        "telemetry-reader",
        "--device",
        "backend-1",
    ]));
    std::thread::sleep(Duration::from_millis(1000).saturating_sub(attached.elapsed()));
    let show = run_ok(ironroot(&data).args(["policy", "show", "telemetry-reader"]));
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(
        show.contains("device backend-1") && show.contains("group readers"),
        "{show}"
    );

    // One second after the CLI committed, the broker grants the subscription. `-d` prints
    // the SUBACK, so sensor-1 publishes only once the subscription is in place.
    let mut sub = Background::spawn(mqtt::line_buffered(
        client("mosquitto_sub", tmp, &data, port, "backend-1").args([
            "-t",
            "devices/+/telemetry",
            "-C",
            "1",
            "-W",
            "10",
            "-v",
            "-d",
        ]),
    ));
    assert!(
        sub.wait_line("received SUBACK", Duration::from_secs(10)),
        "no SUBACK for backend-1"
    );
    run_ok(client("mosquitto_pub", tmp, &data, port, "sensor-1").args([
        "-t",
        "devices/sensor-1/telemetry",
        "-m",
        "21.5",
        "-q",
        "1",
    ]));
    let (code, lines) = sub.finish(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{lines:#?}");
    let messages: Vec<&String> = lines.iter().filter(|l| !is_debug(l)).collect();
    assert_eq!(messages, ["devices/sensor-1/telemetry 21.5"], "{lines:#?}");

    // `ironroot ca revoke` (another process) cuts sensor-1's live session: revoked only once
    // the session is up (its SUBACK printed), so the broker has a session to cut.
    let mut live = Background::spawn(mqtt::line_buffered(
        client("mosquitto_sub", tmp, &data, port, "sensor-1").args([
            "-t",
            "devices/sensor-1/commands",
            "-d",
        ]),
    ));
    assert!(
        live.wait_line("received SUBACK", Duration::from_secs(10)),
        "session should be up"
    );
    run_ok(ironroot(&data).args(["ca", "revoke", "--device", "sensor-1"]));
    let revoked = Instant::now();
    while live.is_running() {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "session still up 1 s after the revocation committed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let log = audit_log_with(
        &data,
        &["policy.create", "policy.attach", "mqtt.kick", "mqtt.denied"],
    );
    assert!(
        log.contains("iot:Pubilsh") || log.contains("Pubilsh"),
        "{log}"
    );
}

/// A `mosquitto_sub -d` protocol trace line (as opposed to a received message).
fn is_debug(line: &str) -> bool {
    line.starts_with("Client ") || line.starts_with("Subscribed (mid")
}

/// Regression: `ironroot mqtt serve` stopped only on Ctrl-C, so SIGTERM (systemd, containers)
/// killed it with the broker's last events still queued. Stopped with SIGTERM, it now cuts
/// the live sessions, records those kicks in the audit log, and exits cleanly.
#[test]
fn sigterm_stops_mqtt_serve_with_its_last_events_in_the_audit_log() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let data = tmp.join("data");
    std::fs::write(tmp.join("root.pass"), "correct horse battery staple\n").unwrap();
    run_ok(
        ironroot(&data)
            .args(["ca", "init", "--root-passphrase-file"])
            .arg(tmp.join("root.pass")),
    );
    device(tmp, &data, "sensor-1");
    let port = free_port();
    let mut serve = ironroot(&data)
        .args(["mqtt", "serve", "--mqtt-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on"), "{line}");
    let mut serve = Serve(serve);

    let mut live = Background::spawn(mqtt::line_buffered(
        client("mosquitto_sub", tmp, &data, port, "sensor-1").args([
            "-t",
            "devices/sensor-1/commands",
            "-d",
        ]),
    ));
    assert!(
        live.wait_line("received SUBACK", Duration::from_secs(10)),
        "session should be up"
    );
    run_ok(Command::new("kill").args(["-TERM", &serve.0.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = serve.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "mqtt serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "mqtt serve after SIGTERM: {status:?}");

    // The process is gone: whatever it recorded is all there is.
    let log = run_ok(ironroot(&data).args(["audit", "show"]));
    let log = String::from_utf8_lossy(&log.stdout).into_owned();
    assert!(log.contains("mqtt.connect"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("mqtt.kick") && l.contains("Shutdown")),
        "the shutdown kick of sensor-1 is not in the audit log:\n{log}"
    );
}
