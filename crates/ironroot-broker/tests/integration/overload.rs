//! Abuse and overload with the shipped default limits: a publish flood from misbehaving devices
//! must not grow the broker's memory or slow everyone else down (issue 13: 2 devices at
//! 20,000 QoS 0 msg/s each grew the broker from 21 MB to 1.22 GB).
//!
//! The broker runs in this test process (nextest gives each test its own process), so the
//! process's resident set is the broker's plus a few small raw clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::harness::*;
use crate::pki::key_der;
use crate::raw::{self, ConnectOpts, Tls};

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

pub(crate) async fn open(b: &TestBroker, id: &str, v5: bool) -> Tls {
    let c = b.client(id);
    let cfg = raw::client_config(&b.pki.ca_der, c.cert_der.clone(), key_der(&c.key_pem));
    let mut io = raw::dial(b.port, cfg).await.expect("dial");
    let opts = ConnectOpts {
        v5,
        ..ConnectOpts::default()
    };
    let (_, rc) = raw::mqtt_connect(&mut io, id, &opts)
        .await
        .expect("connect");
    assert_eq!(rc, 0, "CONNACK for {id}");
    io
}

/// Writes QoS 0 PUBLISHes of 64 bytes at `rate` per second until `stop`; returns how many the
/// socket accepted (a broker applying backpressure makes the writes wait).
async fn flood(mut io: Tls, id: String, v5: bool, rate: u64, stop: Arc<AtomicBool>) -> u64 {
    let topic = format!("devices/{id}/telemetry");
    let pkt = raw::publish(v5, &topic, 0, 0, false, &[0x5a; 64]);
    let per_tick = rate / 100; // every 10 ms
    let batch: Vec<u8> = pkt
        .iter()
        .copied()
        .cycle()
        .take(pkt.len() * per_tick as usize)
        .collect();
    let mut sent = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        match tokio::time::timeout(Duration::from_millis(200), io.write_all(&batch)).await {
            Ok(Ok(())) => sent += per_tick,
            Ok(Err(_)) => break,
            Err(_) => {} // the broker stopped reading: backpressure
        }
    }
    sent
}

/// Publish → deliver latencies (ms) of `n` paced messages from a well-behaved device.
async fn probe_latencies(dev: &mut Tls, sub: &mut Tls, n: usize) -> Vec<f64> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let payload = format!("probe-{i}");
        let pkt = raw::publish(
            false,
            "devices/dev-ok/telemetry",
            0,
            0,
            false,
            payload.as_bytes(),
        );
        let t0 = Instant::now();
        dev.write_all(&pkt).await.unwrap();
        dev.flush().await.unwrap();
        loop {
            let p = raw::read_timeout(sub, Duration::from_secs(5))
                .await
                .expect("probe delivered within 5 s")
                .expect("subscriber connection open");
            if p.kind() == 0x30 && p.publish(false).2 == payload.as_bytes() {
                break;
            }
        }
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    lat.sort_by(f64::total_cmp);
    lat
}

fn p99(sorted: &[f64]) -> f64 {
    sorted[((sorted.len() as f64 * 0.99).ceil() as usize).min(sorted.len()) - 1]
}

#[test]
fn regression_publish_flood_from_two_devices_keeps_memory_flat_and_others_fast() {
    let b = TestBroker::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The backend reads all telemetry: what the flooders get past their rate limit reaches
        // it too, interleaved with the probes.
        let mut sub = open(&b, "backend", false).await;
        sub.write_all(&raw::subscribe(false, 1, "devices/+/telemetry", 0))
            .await
            .unwrap();
        let suback = raw::read_timeout(&mut sub, Duration::from_secs(5)).await;
        assert!(
            matches!(suback, Some(Ok(ref p)) if p.kind() == 0x90 && p.body[2] == 0),
            "{suback:?}"
        );
        let mut dev = open(&b, "dev-ok", false).await;
        let idle = probe_latencies(&mut dev, &mut sub, 50).await;
        let rss_before = rss_kib();

        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_before));
        let mut flooders = Vec::new();
        for (id, v5) in [("dev-flood-3", false), ("dev-flood-5", true)] {
            let io = open(&b, id, v5).await;
            flooders.push(tokio::spawn(flood(io, id.into(), v5, 20_000, stop.clone())));
        }
        let sampler = {
            let (stop, peak) = (stop.clone(), peak.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = probe_latencies(&mut dev, &mut sub, 150).await; // ~7 s
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let mut offered = 0;
        for f in flooders {
            offered += f.await.unwrap();
        }
        sampler.await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = rss_kib();
        let peak = peak.load(Ordering::Relaxed);
        let (idle_p99, flood_p99) = (p99(&idle), p99(&during));
        eprintln!(
            "rss before {rss_before} KiB, peak {peak} KiB, after {rss_after} KiB; \
             flooders wrote {offered} messages; probe p99 idle {idle_p99:.2} ms, \
             during flood {flood_p99:.2} ms"
        );
        assert!(peak < 150 * 1024, "peak RSS {peak} KiB during the flood");
        assert!(
            rss_after < 150 * 1024,
            "RSS {rss_after} KiB after the flood"
        );
        // 2x the idle p99, with a 25 ms floor: the suite shares 2 cores with other tests, and an
        // idle p99 of a millisecond doubles from one scheduler hiccup. The strict 2x comparison
        // on a quiet machine is in the broker benchmark (docs/benchmarks.md).
        let bound = (2.0 * idle_p99).max(25.0);
        assert!(
            flood_p99 <= bound,
            "probe p99 {flood_p99:.2} ms during the flood, idle {idle_p99:.2} ms"
        );
        let stats = b.handle.device_stats("dev-flood-3").unwrap();
        assert!(
            stats.messages_in < offered / 4,
            "the rate limit held: {} admitted of {offered} written",
            stats.messages_in
        );
        assert!(
            stats.messages_in > 0,
            "the flooder was throttled, not cut off"
        );
    });
}

/// A QoS 1 publisher: `rate` messages per second, at most `window` unacknowledged, until `stop`;
/// returns the payloads the broker acknowledged (PUBACK `0`).
async fn qos1_publisher(
    io: Tls,
    id: String,
    rate: u64,
    window: usize,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let topic = format!("devices/{id}/telemetry");
    let inflight = Arc::new(tokio::sync::Semaphore::new(window));
    let pending = Arc::new(parking_lot::Mutex::new(std::collections::HashMap::new()));
    let reader = {
        let (inflight, pending) = (inflight.clone(), pending.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            while let Ok(p) = raw::read_packet(&mut rd).await {
                if p.kind() == 0x40 {
                    let pid = u16::from_be_bytes([p.body[0], p.body[1]]);
                    if let Some(payload) = pending.lock().remove(&pid) {
                        acked.push(payload);
                        inflight.add_permits(1);
                    }
                }
            }
            acked
        })
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut seq: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let Ok(permit) = inflight.acquire().await else {
            break;
        };
        permit.forget();
        seq += 1;
        let pid = (seq % 65_000 + 1) as u16;
        let payload = format!("{id}:{seq}");
        pending.lock().insert(pid, payload.clone());
        let pkt = raw::publish(false, &topic, 1, pid, false, payload.as_bytes());
        if wr.write_all(&pkt).await.is_err() {
            break;
        }
    }
    // Let the outstanding PUBACKs arrive, then close.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pending.lock().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = wr.write_all(&raw::disconnect()).await;
    let _ = wr.shutdown().await;
    reader.await.unwrap()
}

/// Issue 13: "every QoS 1 message that got a PUBACK is delivered". Twenty devices at the default
/// publish rate (100 msg/s each) into one backend that reads 400 messages per second: the
/// backend's queue (default 1,000) fills within a second, then publishers are held until there
/// is room instead of being acknowledged and dropped.
#[test]
fn regression_fan_in_qos1_every_acknowledged_message_is_delivered() {
    let b = TestBroker::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sub = open(&b, "backend", false).await;
        sub.write_all(&raw::subscribe(false, 1, "devices/+/telemetry", 1))
            .await
            .unwrap();
        let suback = raw::read_timeout(&mut sub, Duration::from_secs(5)).await;
        assert!(
            matches!(suback, Some(Ok(ref p)) if p.kind() == 0x90 && p.body[2] == 1),
            "{suback:?}"
        );
        let slow = Arc::new(AtomicBool::new(true));
        let subscriber = {
            let slow = slow.clone();
            tokio::spawn(async move {
                let mut got = std::collections::HashSet::new();
                loop {
                    let timeout = if slow.load(Ordering::Relaxed) { 30 } else { 3 };
                    let Some(Ok(p)) =
                        raw::read_timeout(&mut sub, Duration::from_secs(timeout)).await
                    else {
                        break;
                    };
                    if p.kind() != 0x30 {
                        continue;
                    }
                    let (_, pid, payload) = p.publish(false);
                    got.insert(String::from_utf8(payload).unwrap());
                    sub.write_all(&raw::ack(0x40, pid.unwrap())).await.unwrap();
                    if slow.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_micros(2_500)).await;
                    }
                }
                got
            })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut publishers = Vec::new();
        for i in 0..20 {
            let id = format!("dev-fan-{i}");
            let io = open(&b, &id, false).await;
            publishers.push(tokio::spawn(qos1_publisher(io, id, 100, 16, stop.clone())));
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
        let rss = rss_kib();
        stop.store(true, Ordering::Relaxed);
        slow.store(false, Ordering::Relaxed); // drain what is queued at full speed
        let mut acked = Vec::new();
        for p in publishers {
            acked.extend(p.await.unwrap());
        }
        let got = subscriber.await.unwrap();
        let stats = b.handle.stats();
        let missing: Vec<&String> = acked.iter().filter(|m| !got.contains(*m)).collect();
        eprintln!(
            "acknowledged {}, delivered {}, missing {}; backpressure waits {}, timeouts {}; \
             RSS {rss} KiB",
            acked.len(),
            got.len(),
            missing.len(),
            stats.backpressure_waits,
            stats.backpressure_timeouts
        );
        assert!(
            missing.is_empty(),
            "{} acknowledged messages never delivered, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        assert!(
            acked.len() > 1_500,
            "the backend received a real load: {} acknowledged",
            acked.len()
        );
        assert!(
            stats.backpressure_waits > 0,
            "the offered 2,000 msg/s exceeded what the backend took: publishers were held"
        );
        assert!(
            acked.len() < 20 * 100 * 6,
            "held publishers sent less than offered: {} acknowledged",
            acked.len()
        );
        assert_eq!(stats.backpressure_timeouts, 0);
    });
}

/// Publishes QoS 1 `payload` with `pid` and waits for its PUBACK: `Some(reason code)`, or `None`
/// when the broker closed the connection instead.
async fn publish_qos1(io: &mut Tls, v5: bool, pid: u16) -> Option<u8> {
    let pkt = raw::publish(v5, "devices/dev-stall/telemetry", 1, pid, false, b"m");
    io.write_all(&pkt).await.ok()?;
    loop {
        let p = raw::read_timeout(io, Duration::from_secs(10)).await?.ok()?;
        if p.kind() == 0x40 {
            assert_eq!(u16::from_be_bytes([p.body[0], p.body[1]]), pid);
            return Some(if p.body.len() > 2 { p.body[2] } else { 0 });
        }
    }
}

/// A subscriber that stops reading holds its publishers for `backpressure_timeout`, then the
/// publisher is told: v5 PUBACK `0x97`, v3 (no negative acknowledgment) the connection closes
/// without PUBACK, so the client sends the message again. Never a PUBACK `0` for a message the
/// subscriber's queue did not take.
#[test]
fn stalled_subscriber_refuses_after_the_backpressure_timeout() {
    let b = TestBroker::start_with({
        let mut l = ironroot_broker::Limits::default();
        l.max_queued_messages = 5;
        l.backpressure_timeout = Duration::from_millis(300);
        l
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sub = open(&b, "backend", true).await;
        sub.write_all(&raw::subscribe(true, 1, "devices/+/telemetry", 1))
            .await
            .unwrap();
        assert!(matches!(
            raw::read_timeout(&mut sub, Duration::from_secs(5)).await,
            Some(Ok(ref p)) if p.kind() == 0x90
        ));
        // The subscriber reads nothing from here on.
        let mut v5 = open(&b, "dev-stall", true).await;
        let mut accepted = 0;
        let mut pid = 0;
        let refused_after = loop {
            pid += 1;
            assert!(pid < 200, "never refused: the queue is not bounded");
            let t0 = Instant::now();
            match publish_qos1(&mut v5, true, pid).await {
                Some(0) => accepted += 1,
                Some(0x97) => break t0.elapsed(),
                other => panic!("PUBACK {other:?} for message {pid}"),
            }
        };
        assert!(
            accepted >= 5,
            "the queue took its 5 (and the inflight window)"
        );
        assert!(
            refused_after >= Duration::from_millis(250),
            "held for the timeout first: {refused_after:?}"
        );
        assert_eq!(b.handle.stats().backpressure_timeouts, 1);
        drop(v5);

        let mut v3 = open(&b, "dev-stall", false).await;
        assert_eq!(
            publish_qos1(&mut v3, false, 1).await,
            None,
            "3.1.1: closed without PUBACK"
        );

        // The subscriber drains: the same path accepts again.
        let drain = tokio::spawn(async move {
            while let Some(Ok(p)) = raw::read_timeout(&mut sub, Duration::from_secs(3)).await {
                if p.kind() == 0x30 {
                    let (_, pid, _) = p.publish(true);
                    sub.write_all(&raw::ack(0x40, pid.unwrap())).await.unwrap();
                }
            }
        });
        let mut v5 = open(&b, "dev-stall", true).await;
        assert_eq!(publish_qos1(&mut v5, true, 1).await, Some(0));
        drop(v5);
        drain.await.unwrap();
    });
}
