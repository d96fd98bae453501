//! The global memory budget (issue 13): a subscriber that stops reading while a device floods
//! it fills the broker's message memory; past the high watermark a new CONNECT is refused with
//! `0x97 Quota exceeded` (paho-mqtt shows the reason code; 3.1.1: server unavailable), the
//! flooder is no longer read, and the memory held stays within the budget. Once the subscriber
//! drains its queue, the same CONNECT succeeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ironroot_broker::Limits;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::harness::*;
use crate::overload::open;
use crate::raw;

const BUDGET: usize = 1 << 20;
const PAYLOAD: usize = 8 * 1024;

/// One value of the broker's `/metrics` exposition (a metric without labels, or `name{labels}`).
fn metric(b: &TestBroker, name: &str) -> f64 {
    let mut out = String::new();
    b.handle.render_metrics(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} not in\n{out}"))
        .parse()
        .unwrap()
}

/// The CONNACK code paho-mqtt reports for a CONNECT as `id` with `protocol` 4 or 5.
fn paho_connack(b: &TestBroker, id: &str, protocol: u8) -> u64 {
    paho_connack_with(b, id, protocol, json!({}))
}

/// As [`paho_connack`], with extra spec keys (`clean`, `session_expiry`).
fn paho_connack_with(b: &TestBroker, id: &str, protocol: u8, extra: serde_json::Value) -> u64 {
    let c = b.client(id);
    let mut spec = paho_spec(b, &c, id, protocol, json!([]));
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let log = Paho::run(&spec);
    let acks = evs(&log, "connack");
    assert_eq!(acks.len(), 1, "{log:?}");
    acks[0]["rc"].as_u64().unwrap()
}

#[test]
fn memory_budget_refuses_connects_with_quota_exceeded_until_drained() {
    let mut limits = Limits::default();
    limits.memory_budget = BUDGET;
    limits.publish_rate = None;
    let b = TestBroker::start_with(limits);
    assert_eq!(paho_connack(&b, "dev-late", 5), 0, "accepted while idle");
    // A device with a persistent session, offline while the budget fills.
    let persistent = json!({"clean": false, "session_expiry": 300});
    assert_eq!(
        paho_connack_with(&b, "dev-persist", 5, persistent.clone()),
        0
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut sub = rt.block_on(async {
        let mut sub = open(&b, "backend", false).await;
        sub.write_all(&raw::subscribe(false, 1, "devices/+/telemetry", 0))
            .await
            .unwrap();
        let suback = raw::read_timeout(&mut sub, Duration::from_secs(5)).await;
        assert!(
            matches!(suback, Some(Ok(ref p)) if p.kind() == 0x90 && p.body[2] == 0),
            "{suback:?}"
        );
        sub // and from now on it does not read
    });

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let flooder = rt.spawn({
        let io = rt.block_on(open(&b, "dev-flood", false));
        let (stop, written) = (stop.clone(), written.clone());
        async move {
            let mut io = io;
            let pkt = raw::publish(
                false,
                "devices/dev-flood/telemetry",
                0,
                0,
                false,
                &[7; PAYLOAD],
            );
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(100), io.write_all(&pkt)).await {
                    Ok(Ok(())) => {
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(_)) => break,
                    Err(_) => {} // not read: held by the budget (or the socket is full)
                }
            }
            io
        }
    });

    assert!(
        wait_until(Duration::from_secs(20), || metric(
            &b,
            "ironroot_mqtt_memory_overloaded"
        ) == 1.0),
        "budget never reached: {} messages written, {} bytes held",
        written.load(Ordering::Relaxed),
        metric(&b, "ironroot_mqtt_memory_used_bytes")
    );
    assert_eq!(paho_connack(&b, "dev-late", 5), 0x97, "v5: Quota exceeded");
    // paho-mqtt 2 reports the 3.1.1 return code 3 (server unavailable) as the v5 code 0x88.
    assert_eq!(
        paho_connack(&b, "dev-late", 4),
        0x88,
        "v3.1.1: server unavailable"
    );
    assert_eq!(
        paho_connack_with(&b, "dev-persist", 5, persistent.clone()),
        0,
        "resuming a kept session is let in: reading its queue frees memory"
    );
    assert_eq!(
        paho_connack_with(&b, "dev-persist", 5, json!({})),
        0x97,
        "the same device starting a clean session is not"
    );
    // While refused, the flooder keeps writing but is not read: the memory held stays bounded.
    let mut peak = 0.0f64;
    for _ in 0..40 {
        peak = peak.max(metric(&b, "ironroot_mqtt_memory_used_bytes"));
        std::thread::sleep(Duration::from_millis(25));
    }
    let slack = (32 * (PAYLOAD + 512)) as f64; // one inflight window of the flooder
    assert!(
        peak <= BUDGET as f64 + slack,
        "held {peak} bytes with a budget of {BUDGET}"
    );
    assert!(
        metric(
            &b,
            "ironroot_mqtt_publish_throttled_total{reason=\"memory_budget\"}"
        ) >= 1.0
    );
    assert!(metric(&b, "ironroot_mqtt_refusals_total{reason=\"memory_budget\"}") >= 2.0);
    stop.store(true, Ordering::Relaxed);
    let flood_io = rt.block_on(flooder).unwrap();
    drop(flood_io);

    // The subscriber drains what it was sent; the queue empties, memory goes back down.
    let drained = rt.block_on(async {
        let mut n = 0u64;
        while let Some(Ok(p)) = raw::read_timeout(&mut sub, Duration::from_millis(500)).await {
            n += u64::from(p.kind() == 0x30);
        }
        n
    });
    assert!(drained > 0);
    assert!(
        wait_until(Duration::from_secs(5), || metric(
            &b,
            "ironroot_mqtt_memory_overloaded"
        ) == 0.0),
        "still overloaded after the drain: {} bytes held",
        metric(&b, "ironroot_mqtt_memory_used_bytes")
    );
    assert_eq!(
        paho_connack(&b, "dev-late", 5),
        0,
        "the same CONNECT is accepted again"
    );
    eprintln!(
        "flooder wrote {} messages; subscriber drained {drained}; peak held {peak} bytes",
        written.load(Ordering::Relaxed)
    );
    drop(sub);
}
