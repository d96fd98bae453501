//! Limits: maximum packet size, inflight window, per-client publish rate, maximum
//! subscriptions, per-source connection rate, TLS and CONNECT timeouts, queue bound; and the
//! QoS 2 exchange across a reconnect. Real clients where they can produce the situation, the
//! raw client (`raw.rs`) where they cannot.

use std::time::{Duration, Instant};

use ironroot_broker::{BrokerEvent, Limits, RateLimit};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::harness::*;
use crate::pki::{ClientFiles, key_der};
use crate::raw::{self, ConnectOpts};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn raw_cfg(b: &TestBroker, c: &ClientFiles) -> std::sync::Arc<rustls::ClientConfig> {
    raw::client_config(&b.pki.ca_der, c.cert_der.clone(), key_der(&c.key_pem))
}

fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

#[test]
fn oversized_packet_closes_connection_with_0x95() {
    let b = TestBroker::start_with(limits(|l| l.max_packet_size = 1024));
    let dev = b.client("dev-1");
    let big = "x".repeat(2000);
    let log = Paho::run(&paho_spec(
        &b,
        &dev,
        "dev-1",
        5,
        json!([
            ["publish", "devices/dev-1/telemetry", big, 1, false],
            ["wait_disconnect", 3]
        ]),
    ));
    let disc = evs(&log, "disconnect");
    assert_eq!(disc.len(), 1, "{log:?}");
    assert_eq!(disc[0]["rc"], 0x95, "packet too large: {log:?}");
    assert!(evs(&log, "puback").is_empty());
    // MQTT 3.1.1: the connection is closed.
    rt().block_on(async {
        let mut io = raw::dial(b.port, raw_cfg(&b, &dev)).await.unwrap();
        assert_eq!(
            raw::mqtt_connect(&mut io, "dev-1", &ConnectOpts::default())
                .await
                .unwrap()
                .1,
            0
        );
        io.write_all(&raw::publish(
            false,
            "devices/dev-1/telemetry",
            1,
            1,
            false,
            &[0u8; 2000],
        ))
        .await
        .unwrap();
        assert!(raw::closed_within(&mut io, Duration::from_secs(3)).await);
    });
    assert_eq!(b.handle.device_stats("dev-1").unwrap().messages_in, 0);
}

/// Before issue 13, a v5 PUBLISH over the rate was answered `0x97` and dropped (QoS 0 silently).
/// Now the broker stops reading (backpressure): every message arrives, later.
#[test]
fn publish_rate_mqtt5_throttles_without_loss() {
    let b = TestBroker::start_with(limits(|l| l.publish_rate = Some(RateLimit::new(5.0, 3.0))));
    let dev = b.client("dev-1");
    let steps: Vec<_> = (0..8)
        .map(|i| {
            json!([
                "publish",
                "devices/dev-1/telemetry",
                format!("m{i}"),
                1,
                false
            ])
        })
        .collect();
    let t0 = Instant::now();
    let log = Paho::run(&paho_spec(&b, &dev, "dev-1", 5, json!(steps)));
    let took = t0.elapsed();
    let codes: Vec<u64> = evs(&log, "puback")
        .iter()
        .map(|a| a["rc"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![0; 8], "every message accepted: {codes:?}");
    assert!(
        took >= Duration::from_millis(900),
        "burst of 3, then 5 more at 5/s took {took:?}"
    );
    assert_eq!(b.handle.device_stats("dev-1").unwrap().messages_in, 8);
    let events = b.events();
    let n = events
        .iter()
        .filter(|e| matches!(e, BrokerEvent::PublishRateExceeded { .. }))
        .count();
    assert_eq!(n, 1, "one event per episode: {events:?}");
}

#[test]
fn publish_rate_mqtt311_throttles_without_loss() {
    let b = TestBroker::start_with(limits(|l| l.publish_rate = Some(RateLimit::new(10.0, 1.0))));
    let (dev, backend) = (b.client("dev-1"), b.client("backend"));
    let mut w = Paho::spawn(&paho_spec(
        &b,
        &backend,
        "backend",
        4,
        json!([
            ["subscribe", "devices/+/telemetry", 1],
            ["wait_messages", 10, 10]
        ]),
    ));
    assert!(w.wait_ev("suback", Duration::from_secs(5)).is_some());
    let steps: Vec<_> = (0..10)
        .map(|i| {
            json!([
                "publish",
                "devices/dev-1/telemetry",
                format!("m{i}"),
                1,
                false
            ])
        })
        .collect();
    let t0 = Instant::now();
    let log = Paho::run(&paho_spec(&b, &dev, "dev-1", 4, json!(steps)));
    let took = t0.elapsed();
    assert_eq!(evs(&log, "puback").len(), 10, "{log:?}");
    assert!(
        took >= Duration::from_millis(800),
        "10 messages at 10/s with burst 1 took {took:?}"
    );
    let got = w.finish();
    assert_eq!(
        payloads(&got),
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "all delivered, in order"
    );
}

#[test]
fn max_subscriptions() {
    for (protocol, refused) in [(5u8, 0x97u64), (4, 0x80)] {
        let b = TestBroker::start_with(limits(|l| l.max_subscriptions = 1));
        let backend = b.client("backend");
        let log = Paho::run(&paho_spec(
            &b,
            &backend,
            "backend",
            protocol,
            json!([
                ["subscribe", "devices/+/telemetry", 1],
                ["subscribe", "devices/+/telemetry", 0],
                ["subscribe", "devices/+/status", 1]
            ]),
        ));
        let codes: Vec<_> = evs(&log, "suback")
            .iter()
            .map(|s| s["codes"][0].as_u64().unwrap())
            .collect();
        assert_eq!(
            codes,
            vec![1, 0, refused],
            "re-subscribing replaces; a second filter is over quota (MQTT {protocol})"
        );
    }
}

#[test]
fn connection_rate_per_source_enforced_before_tls() {
    let b = TestBroker::start_with(limits(|l| {
        l.connection_rate_per_ip = Some(RateLimit::new(1.0, 3.0))
    }));
    let dev = b.client("dev-1");
    let cfg = raw_cfg(&b, &dev);
    let (ok, refused) = rt().block_on(async {
        let (mut ok, mut refused) = (0, 0);
        let mut keep = vec![];
        for _ in 0..10 {
            match raw::dial(b.port, cfg.clone()).await {
                Ok(io) => {
                    ok += 1;
                    keep.push(io);
                }
                Err(_) => refused += 1,
            }
        }
        (ok, refused)
    });
    assert_eq!(
        (ok, refused),
        (3, 7),
        "burst of 3, the rest closed before the handshake"
    );
    assert_eq!(b.handle.stats().connections_rate_limited, 7);
    assert_eq!(
        b.handle.stats().tls_handshake_failures,
        0,
        "refused connections cost no TLS"
    );
    let n = b
        .events()
        .iter()
        .filter(|e| matches!(e, BrokerEvent::ConnectionRateExceeded { .. }))
        .count();
    assert_eq!(n, 1, "reported once per burst");
}

#[test]
fn slow_handshake_and_missing_connect_time_out() {
    let b = TestBroker::start_with(limits(|l| {
        l.tls_handshake_timeout = Duration::from_secs(1);
        l.connect_timeout = Duration::from_secs(1);
    }));
    let dev = b.client("dev-1");
    rt().block_on(async {
        // TCP only, no ClientHello.
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", b.port))
            .await
            .unwrap();
        let t0 = Instant::now();
        assert!(raw::closed_within(&mut tcp, Duration::from_secs(5)).await);
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "handshake timeout after {took:?}"
        );
        // TLS done, no CONNECT.
        let mut io = raw::dial(b.port, raw_cfg(&b, &dev)).await.unwrap();
        let t0 = Instant::now();
        assert!(raw::closed_within(&mut io, Duration::from_secs(8)).await);
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "connect timeout after {:?}",
            t0.elapsed()
        );
    });
}

fn inflight_window(v5: bool) {
    let b = TestBroker::start_with(limits(|l| l.inflight_window = 4));
    let (backend, dev) = (b.client("backend"), b.client("dev-1"));
    rt().block_on(async {
        let mut sub = raw::dial(b.port, raw_cfg(&b, &backend)).await.unwrap();
        let o = ConnectOpts {
            v5,
            ..ConnectOpts::default()
        };
        assert_eq!(
            raw::mqtt_connect(&mut sub, "backend", &o).await.unwrap().1,
            0
        );
        sub.write_all(&raw::subscribe(v5, 1, "devices/+/telemetry", 1))
            .await
            .unwrap();
        assert_eq!(raw::read_packet(&mut sub).await.unwrap().kind(), 0x90);
        let mut publisher = raw::dial(b.port, raw_cfg(&b, &dev)).await.unwrap();
        assert_eq!(
            raw::mqtt_connect(&mut publisher, "dev-1", &o)
                .await
                .unwrap()
                .1,
            0
        );
        for i in 0..10u16 {
            publisher
                .write_all(&raw::publish(
                    v5,
                    "devices/dev-1/telemetry",
                    1,
                    i + 1,
                    false,
                    format!("m{i}").as_bytes(),
                ))
                .await
                .unwrap();
        }
        let mut pids = vec![];
        while let Some(Ok(p)) = raw::read_timeout(&mut sub, Duration::from_millis(700)).await {
            assert_eq!(p.kind(), 0x30);
            pids.push(p.publish(v5).1.unwrap());
        }
        assert_eq!(pids.len(), 4, "no more than the window unacknowledged");
        let mut total = pids.len();
        while total < 10 {
            for pid in pids.drain(..) {
                sub.write_all(&raw::ack(0x40, pid)).await.unwrap();
            }
            while let Some(Ok(p)) = raw::read_timeout(&mut sub, Duration::from_millis(500)).await {
                pids.push(p.publish(v5).1.unwrap());
            }
            assert!(!pids.is_empty() && pids.len() <= 4, "{pids:?}");
            total += pids.len();
        }
        assert_eq!(total, 10);
    });
}

#[test]
fn inflight_window_mqtt311() {
    inflight_window(false);
}

#[test]
fn inflight_window_mqtt5() {
    inflight_window(true);
}

#[test]
fn full_queue_drops_newest_and_counts() {
    let b = TestBroker::start_with(limits(|l| l.max_queued_messages = 3));
    let (backend, dev) = (b.client("backend"), b.client("dev-1"));
    Paho::run(
        &paho_spec(
            &b,
            &backend,
            "backend",
            4,
            json!([["subscribe", "devices/+/telemetry", 1], ["disconnect"]]),
        )
        .tap(|s| s["clean"] = json!(false)),
    );
    let steps: Vec<_> = (0..6)
        .map(|i| {
            json!([
                "publish",
                "devices/dev-1/telemetry",
                format!("m{i}"),
                1,
                false
            ])
        })
        .collect();
    Paho::run(&paho_spec(&b, &dev, "dev-1", 4, json!(steps)));
    let log = Paho::run(
        &paho_spec(
            &b,
            &backend,
            "backend",
            4,
            json!([["wait_messages", 3, 3], ["sleep", 0.3]]),
        )
        .tap(|s| s["clean"] = json!(false)),
    );
    assert_eq!(
        payloads(&log),
        vec!["m0", "m1", "m2"],
        "the oldest are kept, newer ones dropped"
    );
    assert_eq!(
        b.handle.device_stats("backend").unwrap().messages_dropped,
        3
    );
    let overflow: Vec<_> = b
        .events()
        .into_iter()
        .filter(|e| matches!(e, BrokerEvent::QueueOverflow { .. }))
        .collect();
    assert_eq!(overflow.len(), 1, "reported once per episode: {overflow:?}");
}

trait Tap {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for serde_json::Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

/// A QoS 2 exchange interrupted after PUBREC continues on the next connection: the re-sent
/// PUBLISH is not routed twice and the re-sent PUBREL is completed, not treated as a protocol
/// error (which would make the client reconnect forever).
#[test]
fn qos2_exactly_once_across_reconnect_mqtt311() {
    let b = TestBroker::start();
    let (backend, dev) = (b.client("backend"), b.client("dev-1"));
    let mut w = Paho::spawn(&paho_spec(
        &b,
        &backend,
        "backend",
        4,
        json!([["subscribe", "devices/+/telemetry", 2], ["sleep", 2.5]]),
    ));
    assert!(w.wait_ev("suback", Duration::from_secs(5)).is_some());
    rt().block_on(async {
        let o = ConnectOpts {
            clean: false,
            ..ConnectOpts::default()
        };
        let mut io = raw::dial(b.port, raw_cfg(&b, &dev)).await.unwrap();
        raw::mqtt_connect(&mut io, "dev-1", &o).await.unwrap();
        io.write_all(&raw::publish(
            false,
            "devices/dev-1/telemetry",
            2,
            7,
            false,
            b"once",
        ))
        .await
        .unwrap();
        let rec = raw::read_packet(&mut io).await.unwrap();
        assert_eq!((rec.header, rec.body.clone()), (0x50, vec![0, 7]), "PUBREC");
        drop(io); // connection lost before PUBREL

        let mut io = raw::dial(b.port, raw_cfg(&b, &dev)).await.unwrap();
        let (present, rc) = raw::mqtt_connect(&mut io, "dev-1", &o).await.unwrap();
        assert_eq!((present, rc), (true, 0));
        io.write_all(&raw::publish(
            false,
            "devices/dev-1/telemetry",
            2,
            7,
            true,
            b"once",
        ))
        .await
        .unwrap();
        assert_eq!(
            raw::read_packet(&mut io).await.unwrap().header,
            0x50,
            "PUBREC again"
        );
        io.write_all(&raw::ack(0x62, 7)).await.unwrap();
        assert_eq!(
            raw::read_packet(&mut io).await.unwrap().header,
            0x70,
            "PUBCOMP"
        );
        // A PUBREL for an exchange this connection never saw is completed too.
        io.write_all(&raw::ack(0x62, 9)).await.unwrap();
        let comp = raw::read_packet(&mut io).await.unwrap();
        assert_eq!((comp.header, comp.body), (0x70, vec![0, 9]));
        io.write_all(&raw::disconnect()).await.unwrap();
    });
    assert_eq!(
        payloads(&w.finish()),
        vec!["once"],
        "delivered exactly once"
    );
}

#[test]
fn plaintext_listener_only_under_danger_name() {
    // Off by default: the TLS port does not speak plaintext MQTT.
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    rt().block_on(async {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", b.port))
            .await
            .unwrap();
        tcp.write_all(&raw::connect("dev-1", &ConnectOpts::default()))
            .await
            .unwrap();
        assert!(raw::closed_within(&mut tcp, Duration::from_secs(3)).await);
    });
    drop(dev);
    // Enabled explicitly: mosquitto_pub without TLS works, identity = client id.
    let (sink, _rx) = ironroot_broker::event_channel(10);
    let mut config = ironroot_broker::BrokerConfig::new("127.0.0.1:0".parse().unwrap());
    config.workers = 1;
    let handle = ironroot_broker::BrokerBuilder::new(config)
        .policy(std::sync::Arc::new(ironroot_broker::IronrootPolicies::new(
            standard_snapshot(),
        )))
        .events(std::sync::Arc::new(sink))
        .danger_plaintext_listener(ironroot_broker::danger::PlaintextListener {
            addr: "127.0.0.1:0".parse().unwrap(),
        })
        .start()
        .unwrap();
    assert!(handle.local_addr().is_none(), "no TLS listener configured");
    let port = handle.plaintext_addr().unwrap().port().to_string();
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
            "plain",
            "-q",
            "1",
        ]);
        c
    });
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(handle.device_stats("dev-1").unwrap().messages_in, 1);
    handle.shutdown();
}
