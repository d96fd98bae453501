//! Per-identity limit overrides from the configuration file, against a real node: a device in
//! the registry group `backend` publishes far above the default 100 msg/s while a normal device
//! is throttled to it; moving the normal device into the group lifts its limit from its next
//! connection. Publishers are `mosquitto_pub -l` over mutual TLS; a paho-mqtt subscriber counts
//! what arrives; `/metrics` (read with the reference Prometheus parser) shows the limits.

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ironroot_node::NodeConfig;
use ironroot_store::PolicyTarget;
use ironroot_testkit::mqtt::{ClientTls, Paho, evs, mosquitto, paho_spec};
use serde_json::json;

use crate::harness::{Db, DeviceFiles, TestNode, config_file, prepare};
use crate::metrics::{parse, scrape};

/// Messages each publisher sends: at the default 100/s with a burst of 200 they take ≥ 6 s.
const N: usize = 800;

const WATCH_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/watcher"},
  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/+/telemetry"},
  {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/devices/*"}]}"#;

fn tls<'a>(ca: &'a std::path::Path, d: &'a DeviceFiles) -> ClientTls<'a> {
    ClientTls {
        ca_file: ca,
        cert: &d.cert,
        key: &d.key,
    }
}

/// `mosquitto_pub -l` publishing `N` QoS 1 messages as `id`; returns how long it took.
fn publish_all(t: &TestNode, id: &str, d: &DeviceFiles) -> Duration {
    let ca = t.root_ca();
    let port = t.node().mqtt_addr().port();
    let mut cmd = mosquitto("mosquitto_pub", port, tls(&ca, d), id, false);
    cmd.args(["-q", "1", "-l", "-t", &format!("devices/{id}/telemetry")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("mosquitto_pub");
    let mut lines = String::new();
    for i in 0..N {
        lines.push_str(&format!("{id}-{i}\n"));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "mosquitto_pub {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn throttled(t: &TestNode) -> u64 {
    let mut out = String::new();
    t.node().plane().broker().render_metrics(&mut out);
    let line = out
        .lines()
        .find(|l| l.starts_with("ironroot_mqtt_publish_throttled_total{reason=\"publish_rate\"}"))
        .expect("throttle counter rendered");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_group_publishes_above_the_default_rate() {
    let (dir, _, pg) = prepare(Db::Sqlite).await;
    let file = config_file(
        dir.path(),
        &format!(
            "data_dir = {:?}\n[api]\naddr = \"127.0.0.1:0\"\n[mqtt]\naddr = \"127.0.0.1:0\"\n\
             [[mqtt.limits.override]]\ngroup = \"backend\"\n\
             publish_rate = {{ per_second = 5000.0, burst = 10000.0 }}\nmax_connections = 10\n",
            dir.path()
        ),
    );
    let config = NodeConfig::load(&file).unwrap();
    let t = TestNode::start_with(dir, config, pg).await;
    let svc = t.device("svc-1").await;
    let dev = t.device("dev-1").await;
    let watcher = t.device("watcher").await;
    let store = t.node().server().store();
    store.add_device_to_group("svc-1", "backend").await.unwrap();
    store.put_policy("watch", WATCH_POLICY).await.unwrap();
    store
        .attach_policy("watch", &PolicyTarget::Device("watcher".into()))
        .await
        .unwrap();
    t.caught_up().await;

    let ca = t.root_ca();
    let port = t.node().mqtt_addr().port();
    let mut sub = Paho::spawn(&paho_spec(
        port,
        tls(&ca, &watcher),
        "watcher",
        5,
        json!([
            ["subscribe", "devices/+/telemetry", 1],
            ["wait_messages", 3 * N, 60]
        ]),
    ));
    assert!(
        sub.wait_ev("suback", Duration::from_secs(10))
            .is_some_and(|v| v["codes"] == json!([1])),
        "{:?} {}",
        sub.seen,
        sub.stderr()
    );

    // Blocking child processes: block_in_place keeps the node's tasks running on the other
    // worker thread.
    let svc_took = tokio::task::block_in_place(|| publish_all(&t, "svc-1", &svc));
    assert_eq!(throttled(&t), 0, "the backend device was never throttled");
    let dev_took = tokio::task::block_in_place(|| publish_all(&t, "dev-1", &dev));
    assert!(throttled(&t) >= 1, "the normal device was throttled");
    eprintln!("{N} messages: backend {svc_took:?}, default-limited {dev_took:?}");
    // At the default rate, N messages take at least (N - burst) / rate = 6 s.
    assert!(
        dev_took >= Duration::from_millis(5_500),
        "default rate not applied: {N} messages in {dev_took:?}"
    );
    assert!(
        svc_took < Duration::from_secs(3),
        "backend throttled: {N} messages in {svc_took:?} (default rate would need >= 6 s)"
    );

    // Group membership changes in the registry apply from the device's next connection.
    store.add_device_to_group("dev-1", "backend").await.unwrap();
    t.caught_up().await;
    let before = throttled(&t);
    let promoted = tokio::task::block_in_place(|| publish_all(&t, "dev-1", &dev));
    assert!(
        promoted < Duration::from_secs(3),
        "membership change not applied at reconnect: {N} messages in {promoted:?}"
    );
    assert_eq!(throttled(&t), before);

    // The subscriber counted every message of every run.
    let log = tokio::task::block_in_place(|| sub.finish());
    let per = |id: &str| {
        evs(&log, "message")
            .iter()
            .filter(|m| m["topic"] == format!("devices/{id}/telemetry"))
            .count()
    };
    assert_eq!(per("svc-1"), N, "backend messages delivered");
    assert_eq!(per("dev-1"), 2 * N, "throttled, not lost");

    // The effective limits are in /metrics, as the reference parser reads them.
    let token = std::fs::read_to_string(t.dir.path().join("admin.token")).unwrap();
    let (status, body) = tokio::task::block_in_place(|| scrape(&t, Some(token.trim())));
    assert_eq!(status, 200);
    let m = tokio::task::block_in_place(|| parse(&body));
    let g = "override=\"group:backend\"";
    assert_eq!(
        m[&format!("ironroot_mqtt_override_publish_rate_per_second{{{g}}}")],
        5000.0
    );
    assert_eq!(
        m[&format!("ironroot_mqtt_override_publish_rate_burst{{{g}}}")],
        10000.0
    );
    assert_eq!(
        m[&format!("ironroot_mqtt_identity_max_connections{{{g}}}")],
        10.0
    );
    assert_eq!(
        m["ironroot_mqtt_identity_max_connections{override=\"default\"}"],
        1.0
    );
    assert!(m["ironroot_mqtt_publish_throttled_total{reason=\"publish_rate\"}"] >= 1.0);
    t.stop().await;
}
