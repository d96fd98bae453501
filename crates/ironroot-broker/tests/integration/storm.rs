//! Reconnect storm (issue 13): 5,000 devices, each with its own certificate, behind 20 source
//! addresses (127.0.0.2–21, 250 devices per address as behind a NAT gateway) are connected
//! when the broker restarts; all reconnect at once, retrying with a capped backoff like real
//! devices. With `connection_rate_per_ip` configured for it (burst 250 = the devices behind one
//! address, 100/s sustained), every device is back within the bound below; the measured time
//! is in docs/architecture.md (Overload).
//!
//! Needs ~10,000 file descriptors (both ends of every connection live in this process).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ironroot_broker::{
    BrokerBuilder, BrokerConfig, BrokerHandle, IronrootPolicies, Limits, RateLimit,
};
use rustls::ClientConfig;

use crate::harness::{standard_snapshot, wait_until};
use crate::pki::{TestPki, key_der};
use crate::raw::{self, ConnectOpts, Tls};

const DEVICES: usize = 5_000;
const SOURCES: usize = 20;
/// Every device is back within this after the restart (measured: see docs/architecture.md).
const BOUND: Duration = Duration::from_secs(30);

fn start(pki: &TestPki, addr: SocketAddr) -> BrokerHandle {
    let mut limits = Limits::default();
    limits.connection_rate_per_ip = Some(RateLimit::new(100.0, (DEVICES / SOURCES) as f64));
    let mut config = BrokerConfig::new(addr);
    config.workers = 2;
    config.limits = limits;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The port of the previous broker may take a moment to be free again.
        match BrokerBuilder::new(config.clone())
            .tls_parts(pki.tls_parts())
            .policy(Arc::new(IronrootPolicies::new(standard_snapshot())))
            .start()
        {
            Ok(b) => return b,
            Err(e) if Instant::now() < deadline => {
                eprintln!("restart: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("broker does not start: {e}"),
        }
    }
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8))
}

/// TLS + CONNECT until CONNACK 0, backing off 50 ms · 2^n (≤ 1 s) plus a per-device jitter
/// after each failure; returns the stream and the number of attempts.
async fn connect_retrying(
    port: u16,
    i: usize,
    cfg: Arc<ClientConfig>,
    refusals: Arc<AtomicU64>,
) -> (Tls, u32) {
    let id = format!("storm-{i:04}");
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let once = async {
            let mut io = raw::dial_from(port, source(i), cfg.clone()).await?;
            let (_, rc) = raw::mqtt_connect(&mut io, &id, &ConnectOpts::default()).await?;
            if rc == 0 {
                Ok(io)
            } else {
                Err(std::io::Error::other(format!("CONNACK {rc}")))
            }
        };
        match tokio::time::timeout(Duration::from_secs(15), once).await {
            Ok(Ok(io)) => return (io, attempt),
            _ => {
                refusals.fetch_add(1, Ordering::Relaxed);
                let backoff = (50u64 << attempt.min(5)).min(1_000);
                let jitter = (i as u64 * 7919 + u64::from(attempt) * 31) % 100;
                tokio::time::sleep(Duration::from_millis(backoff + jitter)).await;
            }
        }
    }
}

/// Connects every device at once; returns the streams and the time until the last CONNACK.
async fn connect_all(port: u16, cfgs: &[Arc<ClientConfig>]) -> (Vec<Tls>, Duration, u64, u32) {
    let refusals = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = cfgs
        .iter()
        .enumerate()
        .map(|(i, cfg)| tokio::spawn(connect_retrying(port, i, cfg.clone(), refusals.clone())))
        .collect();
    let mut streams = Vec::with_capacity(tasks.len());
    let mut most_attempts = 0;
    for t in tasks {
        let (io, attempts) = t.await.unwrap();
        most_attempts = most_attempts.max(attempts);
        streams.push(io);
    }
    (
        streams,
        start.elapsed(),
        refusals.load(Ordering::Relaxed),
        most_attempts,
    )
}

#[test]
fn reconnect_storm_5000_devices_from_20_sources_after_a_restart() {
    let pki = TestPki::new("storm");
    let t0 = Instant::now();
    let cfgs: Vec<Arc<ClientConfig>> = (0..DEVICES)
        .map(|i| {
            let c = pki.client(&format!("storm-{i:04}"));
            raw::client_config(&pki.ca_der, c.cert_der.clone(), key_der(&c.key_pem))
        })
        .collect();
    eprintln!("{DEVICES} certificates in {:?}", t0.elapsed());

    let first = start(&pki, "127.0.0.1:0".parse().unwrap());
    let addr = first.local_addr().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (streams, took, refused, _) = rt.block_on(connect_all(addr.port(), &cfgs));
    assert!(
        wait_until(Duration::from_secs(10), || first.stats().connected
            == DEVICES),
        "{} connected before the restart",
        first.stats().connected
    );
    eprintln!("initial connect: {took:?} ({refused} attempts refused or failed)");

    // The restart: every connection is cut; the devices notice and come back at once.
    first.shutdown();
    drop(streams);
    let second = start(&pki, addr);
    let (streams, took, refused, most) = rt.block_on(connect_all(addr.port(), &cfgs));
    assert!(
        wait_until(Duration::from_secs(10), || second.stats().connected
            == DEVICES),
        "{} connected after the restart",
        second.stats().connected
    );
    let stats = second.stats();
    eprintln!(
        "after the restart all {DEVICES} back in {took:?}: {refused} attempts refused or \
         failed, at most {most} attempts per device, {} closed by the per-IP rate, {} TLS \
         handshake failures",
        stats.connections_rate_limited, stats.tls_handshake_failures
    );
    assert!(
        took <= BOUND,
        "{DEVICES} devices back in {took:?}, more than {BOUND:?}"
    );
    drop(streams);
    second.shutdown();
}
