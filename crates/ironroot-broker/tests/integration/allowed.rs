//! Allowed paths work with real clients, MQTT 3.1.1 and 5.

use std::time::Duration;

use crate::harness::*;

fn telemetry_reaches_backend(v5: bool) {
    let b = TestBroker::start();
    let backend = b.client("backend");
    let dev = b.client("dev-1");
    let sub = Background::spawn({
        let mut c = mosquitto("mosquitto_sub", &b, &backend, "backend", v5);
        c.args([
            "-t",
            "devices/+/telemetry",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "10",
            "-v",
            "-d",
        ]);
        c
    });
    if !b.wait_subscriptions(1, Duration::from_secs(10)) {
        let (code, lines) = sub.finish(Duration::from_secs(1));
        panic!(
            "subscriber got no SUBACK: {code:?} {lines:?} events {:?}",
            b.events()
        );
    }
    let out = run({
        let mut c = mosquitto("mosquitto_pub", &b, &dev, "dev-1", v5);
        c.args(["-t", "devices/dev-1/telemetry", "-m", "21.5", "-q", "1"]);
        c
    });
    assert_eq!(out.code, Some(0), "publish failed: {}", out.stderr);
    let (code, lines) = sub.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "subscriber: {lines:?}");
    assert!(
        lines.iter().any(|l| l == "devices/dev-1/telemetry 21.5"),
        "{lines:?}"
    );
    let stats = b.handle.device_stats("dev-1").unwrap();
    assert_eq!(stats.messages_in, 1);
    assert_eq!(stats.bytes_in, 4);
    assert!(b.handle.device_stats("backend").unwrap().messages_out >= 1);
}

#[test]
fn telemetry_reaches_backend_mqtt311() {
    telemetry_reaches_backend(false);
}

#[test]
fn telemetry_reaches_backend_mqtt5() {
    telemetry_reaches_backend(true);
}

#[test]
fn backend_commands_reach_the_device_with_paho() {
    use serde_json::json;
    for protocol in [4u8, 5] {
        let b = TestBroker::start();
        let (dev, backend) = (b.client("dev-1"), b.client("backend"));
        let mut d = Paho::spawn(&paho_spec(
            &b,
            &dev,
            "dev-1",
            protocol,
            json!([
                ["subscribe", "devices/dev-1/commands", 2],
                ["wait_messages", 1, 5]
            ]),
        ));
        assert!(
            d.wait_ev("suback", Duration::from_secs(5)).is_some(),
            "{:?}",
            d.seen
        );
        let log = Paho::run(&paho_spec(
            &b,
            &backend,
            "backend",
            protocol,
            json!([
                ["publish", "devices/dev-1/commands", "reboot", 2, false],
                ["disconnect"]
            ]),
        ));
        assert_eq!(evs(&log, "puback")[0]["rc"], 0, "{log:?}");
        let got = d.finish();
        let m = evs(&got, "message");
        assert_eq!(m.len(), 1, "{got:?}");
        assert_eq!(
            (m[0]["payload"].as_str(), m[0]["qos"].as_u64()),
            (Some("reboot"), Some(2))
        );
    }
}

#[test]
fn caller_built_server_config_works() {
    // BrokerBuilder::tls with a ready rustls ServerConfig (instead of tls_parts).
    let pki = crate::pki::TestPki::new("direct");
    let mut config = ironroot_broker::BrokerConfig::new("127.0.0.1:0".parse().unwrap());
    config.workers = 1;
    let handle = ironroot_broker::BrokerBuilder::new(config)
        .tls(std::sync::Arc::new(pki.server_config()))
        .policy(std::sync::Arc::new(ironroot_broker::IronrootPolicies::new(
            standard_snapshot(),
        )))
        .start()
        .unwrap();
    let dev = pki.client("dev-1");
    let port = handle.local_addr().unwrap().port().to_string();
    let out = run({
        let mut c = std::process::Command::new(ironroot_testkit::tool("mosquitto_pub"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-i",
            "dev-1",
            "-t",
            "devices/dev-1/telemetry",
            "-m",
            "x",
            "-q",
            "1",
        ])
        .arg("--cafile")
        .arg(pki.ca_file())
        .arg("--cert")
        .arg(&dev.cert)
        .arg("--key")
        .arg(&dev.key);
        c
    });
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(handle.device_stats("dev-1").unwrap().messages_in, 1);
    handle.shutdown();
}
