//! `/metrics` on the API port: operators only, Prometheus text format as the reference parser
//! (`prometheus_client` from PyPI) reads it, and the broker's counters move with real traffic
//! (mosquitto_pub over mutual TLS).

use std::collections::BTreeMap;
use std::process::Command;

use crate::harness::{Db, TestNode};

/// curl `GET /metrics` with `token` (or none): HTTP status and body.
pub fn scrape(t: &TestNode, token: Option<&str>) -> (u16, String) {
    let url = format!("{}/metrics", t.node().server().url());
    let mut cmd = Command::new(ironroot_testkit::tool("curl"));
    cmd.args([
        "--silent",
        "--show-error",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(t.root_ca());
    if let Some(token) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
    }
    let out = ironroot_testkit::run_ok(cmd.arg(url));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// Parses the exposition with `prometheus_client.parser`; `name{labels}` → value. Fails the test
/// when the reference parser rejects the text.
pub fn parse(body: &str) -> BTreeMap<String, f64> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}}\t{s.value}")
"#;
    let mut child = Command::new(ironroot_testkit::python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python from the test virtualenv (bash .ci/run installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejects the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_for_operators_and_count_real_traffic() {
    let t = TestNode::start(Db::Sqlite).await;
    let token = std::fs::read_to_string(t.dir.path().join("admin.token")).unwrap();
    let token = token.trim();

    let (status, body) = scrape(&t, None);
    assert_eq!(status, 401, "no token: {body}");
    let (status, _) = scrape(&t, Some("not-the-token"));
    assert_eq!(status, 401);

    let (status, body) = scrape(&t, Some(token));
    assert_eq!(status, 200, "{body}");
    let before = parse(&body);
    assert_eq!(before["ironroot_up{}"], 1.0);
    assert_eq!(before["ironroot_mqtt_connections{}"], 0.0);
    assert_eq!(before["ironroot_mqtt_connects_total{}"], 0.0);

    let dev = t.device("dev-metrics").await;
    let (ok, log) = t.mqtt_with("dev-metrics", &dev);
    assert!(ok, "{log}");
    // A TLS client without a certificate: the handshake fails, counted by reason.
    let no_cert = ironroot_testkit::run(
        Command::new(ironroot_testkit::tool("curl"))
            .args(["--silent", "--max-time", "10", "--cacert"])
            .arg(t.root_ca())
            .arg(format!(
                "https://localhost:{}/",
                t.node().mqtt_addr().port()
            ))
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", t.node().mqtt_addr().port()),
            ]),
    );
    assert!(
        !no_cert.status.success(),
        "the MQTT listener requires a client certificate"
    );

    let (_, body) = scrape(&t, Some(token));
    let after = parse(&body);
    assert_eq!(after["ironroot_mqtt_connects_total{}"], 1.0, "{body}");
    assert_eq!(after["ironroot_mqtt_messages_in_total{qos=\"1\"}"], 1.0);
    let tls_refused = "ironroot_mqtt_refusals_total{reason=\"tls_handshake\"}";
    assert!(after[tls_refused] >= 1.0, "{body}");
    assert!(after["ironroot_mqtt_tls_handshake_seconds_count{}"] >= 1.0);
    assert_eq!(
        after["ironroot_mqtt_rate_limit_per_second{limit=\"publish_per_connection\"}"], 100.0,
        "the shipped default rate is visible"
    );
    assert!(
        !body.contains("dev-metrics"),
        "no device id in any label or value"
    );
    t.stop().await;
}
