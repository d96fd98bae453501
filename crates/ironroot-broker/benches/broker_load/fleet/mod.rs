//! Fleet-shaped load (issue 13's benchmark): each broker with its **shipped defaults** (ironroot:
//! `Limits::default()`, rate limits and the 1,000-message queues on; Mosquitto: its own
//! defaults), devices connected from many loopback source addresses (`127.0.0.x`), each with
//! its own certificate, publishing QoS 1 at a paced rate into one backend or a
//! shared-subscription group of backends. PUBACKs are counted at the publishers and every
//! acknowledged message is looked for at the backends; latency is taken from the message's
//! *scheduled* send time, so a broker that slows its publishers (backpressure) shows it as
//! latency instead of hiding it (no coordinated omission).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio::io::{AsyncWriteExt, BufReader};

pub mod run;

use crate::load::{Target, rss_kib};
use crate::pki::Pki;
use crate::raw::{self, ConnectOpts, Tls};

/// The `n`-th of `sources` loopback source addresses: 127.0.0.2, 127.0.0.3, ...
pub fn source(n: usize, sources: usize) -> IpAddr {
    let i = (n % sources) as u32 + 2;
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | i))
}

/// TCP from `src` + mutual TLS + CONNECT/CONNACK (MQTT 5 when `v5`).
pub async fn session_from(
    port: u16,
    src: IpAddr,
    cfg: Arc<ClientConfig>,
    id: &str,
    v5: bool,
) -> anyhow::Result<Tls> {
    let mut io = raw::dial_from(port, src, cfg).await?;
    let opts = ConnectOpts {
        v5,
        ..ConnectOpts::default()
    };
    let (_, rc) = raw::mqtt_connect(&mut io, id, &opts).await?;
    anyhow::ensure!(rc == 0, "CONNACK {rc:#x} for {id}");
    Ok(io)
}

/// New mutual-TLS connections per second from `sources` source addresses, `conc` at a time,
/// each connection closed after its CONNACK. Refusals are counted, not hidden.
pub async fn connect_rate(
    t: &Target,
    cfgs: &[(String, Arc<ClientConfig>)],
    sources: usize,
    conc: usize,
) -> anyhow::Result<(f64, u64)> {
    let sem = Arc::new(tokio::sync::Semaphore::new(conc));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(cfgs.len());
    for (i, (id, cfg)) in cfgs.iter().enumerate() {
        let permit = sem.clone().acquire_owned().await?;
        let (id, cfg, port, failed) = (id.clone(), cfg.clone(), t.port, failed.clone());
        let src = source(i, sources);
        tasks.push(tokio::spawn(async move {
            let r = async {
                let mut io = session_from(port, src, cfg, &id, false).await?;
                io.write_all(&raw::disconnect()).await?;
                io.shutdown().await?;
                anyhow::Ok(())
            }
            .await;
            if r.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        }));
    }
    for task in tasks {
        task.await?;
    }
    let ok = cfgs.len() as u64 - failed.load(Ordering::Relaxed);
    Ok((
        ok as f64 / start.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    ))
}

/// The broker's peak RSS, sampled in the background until [`PeakRss::stop`].
struct PeakRss {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Samples process `pid` every `every`, starting from `initial` KiB.
    fn start(pid: u32, initial: u64, every: Duration) -> Self {
        let peak = Arc::new(AtomicU64::new(initial));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(every).await;
            }
        });
        PeakRss { peak, stop, task }
    }

    /// Stops sampling; the peak in KiB.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// Shape of one fleet ingest run.
#[derive(Debug, Clone, Copy)]
pub struct Ingest {
    /// Publishing devices.
    pub devices: usize,
    /// Loopback source addresses the devices are spread over.
    pub sources: usize,
    /// Messages per second per device (paced).
    pub rate: u64,
    /// Seconds of publishing.
    pub secs: u64,
    /// Backend subscribers; more than one means a shared-subscription group.
    pub backends: usize,
    /// Unacknowledged QoS 1 messages a device keeps at most.
    pub window: usize,
}

/// What one ingest run saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestResult {
    /// Messages the devices were scheduled to send.
    pub scheduled: u64,
    /// Messages acknowledged (PUBACK) to their publisher.
    pub acked: u64,
    /// Acknowledged messages that reached a backend.
    pub delivered_acked: u64,
    /// Deliveries counted twice (QoS 1 allows duplicates).
    pub duplicates: u64,
    /// Latency from scheduled send to delivery, p50 and p99, µs.
    pub p50_us: u64,
    /// See `p50_us`.
    pub p99_us: u64,
    /// Delivered messages per second over the publishing period.
    pub per_sec: f64,
    /// Broker RSS at the start and the peak during the run, KiB.
    pub rss_start_kib: u64,
    /// See `rss_start_kib`.
    pub rss_peak_kib: u64,
}

impl IngestResult {
    /// Every scheduled message acknowledged and every acknowledged one delivered.
    pub fn lossless(&self) -> bool {
        self.acked == self.scheduled && self.delivered_acked == self.acked
    }
}

/// Encodes (scheduled µs, device, sequence) into a 64-byte payload.
fn payload(sched_us: u64, device: u32, seq: u32) -> [u8; 64] {
    let mut p = [0u8; 64];
    p[..8].copy_from_slice(&sched_us.to_be_bytes());
    p[8..12].copy_from_slice(&device.to_be_bytes());
    p[12..16].copy_from_slice(&seq.to_be_bytes());
    p
}

/// Connects the backends (`backend-0` ...), subscribed to the telemetry of all devices (a
/// `$share/ingest/...` filter when there are several), and starts their receive loops.
async fn backends(
    t: &Target,
    pki: &Pki,
    n: usize,
    origin: Instant,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<Vec<(u32, u32, u64)>>>> {
    let filter = if n > 1 {
        "$share/ingest/devices/+/telemetry"
    } else {
        "devices/+/telemetry"
    };
    let mut out = vec![];
    for b in 0..n {
        let id = format!("backend-{b}");
        let mut io = session_from(t.port, source(b, 1), pki.client(&id), &id, true).await?;
        io.write_all(&raw::subscribe(true, 1, filter, 1)).await?;
        let ack = raw::read_packet(&mut io).await?;
        // v5 SUBACK: packet id (2), properties length (1, empty), reason codes.
        anyhow::ensure!(
            ack.kind() == 0x90 && ack.body.get(3).is_some_and(|rc| *rc < 0x80),
            "{}: SUBACK {:?} for {filter}",
            t.name,
            ack.body
        );
        let (sr, mut sw) = tokio::io::split(io);
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<u16>();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            while let Some(pid) = ack_rx.recv().await {
                buf.extend_from_slice(&raw::ack(0x40, pid));
                while let Ok(pid) = ack_rx.try_recv() {
                    buf.extend_from_slice(&raw::ack(0x40, pid));
                }
                if sw.write_all(&buf).await.is_err() {
                    break;
                }
                buf.clear();
            }
        });
        out.push(tokio::spawn(async move {
            let mut r = BufReader::with_capacity(64 * 1024, sr);
            let mut seen = Vec::new();
            let mut quiet = Duration::from_secs(30);
            while let Some(Ok(p)) = raw::read_timeout(&mut r, quiet).await {
                if p.kind() != 0x30 {
                    continue;
                }
                // Overloaded brokers queue for many seconds; give up only after a long silence.
                quiet = Duration::from_secs(10);
                let (topic, pid, body) = p.publish(true);
                if let Some(pid) = pid {
                    let _ = ack_tx.send(pid);
                }
                if !topic.starts_with("devices/fleet-") || body.len() < 16 {
                    continue; // not this run's fleet
                }
                let sched = u64::from_be_bytes(body[..8].try_into().unwrap_or_default());
                let dev = u32::from_be_bytes(body[8..12].try_into().unwrap_or_default());
                let seq = u32::from_be_bytes(body[12..16].try_into().unwrap_or_default());
                let now = origin.elapsed().as_micros() as u64;
                seen.push((dev, seq, now.saturating_sub(sched)));
            }
            seen
        }));
    }
    Ok(out)
}

/// One device: paced QoS 1 publishes, at most `window` unacknowledged; returns the sequence
/// numbers that were acknowledged.
async fn device(io: Tls, dev: u32, shape: Ingest, origin: Instant, start: Instant) -> Vec<u32> {
    let topic = format!("devices/fleet-{dev}/telemetry");
    let (r, mut w) = tokio::io::split(io);
    let credit = Arc::new(tokio::sync::Semaphore::new(shape.window));
    let inflight: Arc<parking_lot::Mutex<HashMap<u16, u32>>> = Arc::default();
    let (c2, f2) = (credit.clone(), inflight.clone());
    let reader = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut r = BufReader::new(r);
        while let Ok(p) = raw::read_packet(&mut r).await {
            if p.kind() == 0x40 && p.body.len() >= 2 {
                let pid = u16::from_be_bytes([p.body[0], p.body[1]]);
                // A v5 PUBACK with a reason code of 0x80 or more refuses the message: it is
                // not acknowledged (and not counted as such).
                let refused = p.body.get(2).is_some_and(|rc| *rc >= 0x80);
                if let Some(seq) = f2.lock().remove(&pid) {
                    if !refused {
                        acked.push(seq);
                    }
                    c2.add_permits(1);
                }
            }
        }
        acked
    });
    let total = shape.rate * shape.secs;
    // Devices start spread over one period so the fleet's publishes are not synchronised.
    let offset = Duration::from_micros(u64::from(dev) * 1_000_000 / shape.devices as u64)
        / shape.rate as u32;
    for k in 0..total {
        let sched = start + offset + Duration::from_micros(k * 1_000_000 / shape.rate);
        tokio::time::sleep_until(sched.into()).await;
        let Ok(permit) = credit.acquire().await else {
            break;
        };
        permit.forget();
        let pid = (k % 65_000 + 1) as u16;
        inflight.lock().insert(pid, k as u32);
        let us = sched.duration_since(origin).as_micros() as u64;
        let pkt = raw::publish(true, &topic, 1, pid, false, &payload(us, dev, k as u32));
        if w.write_all(&pkt).await.is_err() || w.flush().await.is_err() {
            break;
        }
    }
    // Wait for the last acknowledgements (a broker applying backpressure may hold them).
    let _ = tokio::time::timeout(
        Duration::from_secs(15),
        credit.acquire_many(shape.window as u32),
    )
    .await;
    let _ = w.write_all(&raw::disconnect()).await;
    let _ = w.shutdown().await;
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// Runs one fleet ingest: connects devices and backends, publishes, and accounts for every
/// acknowledged message.
pub async fn ingest(t: &Target, pki: &Pki, shape: Ingest) -> anyhow::Result<IngestResult> {
    let origin = Instant::now();
    let rss_start = rss_kib(t.pid);
    let backs = backends(t, pki, shape.backends, origin).await?;
    // Connect the fleet, 64 handshakes at a time, spread over the source addresses.
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut conns = Vec::with_capacity(shape.devices);
    for d in 0..shape.devices {
        let permit = sem.clone().acquire_owned().await?;
        let id = format!("fleet-{d}");
        let (cfg, port, src) = (pki.client(&id), t.port, source(d, shape.sources));
        conns.push(tokio::spawn(async move {
            let r = session_from(port, src, cfg, &id, true).await;
            drop(permit);
            r
        }));
    }
    let mut ios = Vec::with_capacity(shape.devices);
    for c in conns {
        ios.push(c.await??);
    }
    let sampler = PeakRss::start(t.pid, rss_start, Duration::from_millis(200));
    let start = Instant::now() + Duration::from_millis(500);
    let devs: Vec<_> = ios
        .into_iter()
        .enumerate()
        .map(|(d, io)| tokio::spawn(device(io, d as u32, shape, origin, start)))
        .collect();
    let mut acked: Vec<Vec<u32>> = Vec::with_capacity(shape.devices);
    for d in devs {
        acked.push(d.await?);
    }
    let mut seen: Vec<Vec<bool>> =
        vec![vec![false; (shape.rate * shape.secs) as usize]; shape.devices];
    let (mut lat, mut duplicates) = (Vec::new(), 0u64);
    for b in backs {
        for (dev, seq, us) in b.await? {
            let slot = seen
                .get_mut(dev as usize)
                .and_then(|s| s.get_mut(seq as usize));
            match slot {
                Some(s) if *s => duplicates += 1,
                Some(s) => {
                    *s = true;
                    lat.push(us);
                }
                None => anyhow::bail!("{}: delivery of unknown message {dev}/{seq}", t.name),
            }
        }
    }
    let rss_peak = sampler.stop().await;
    let acked_n: u64 = acked.iter().map(|a| a.len() as u64).sum();
    let delivered_acked: u64 = acked
        .iter()
        .enumerate()
        .map(|(d, a)| a.iter().filter(|s| seen[d][**s as usize]).count() as u64)
        .sum();
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(IngestResult {
        scheduled: shape.devices as u64 * shape.rate * shape.secs,
        acked: acked_n,
        delivered_acked,
        duplicates,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        per_sec: lat.len() as f64 / shape.secs as f64,
        rss_start_kib: rss_start,
        rss_peak_kib: rss_peak,
    })
}

/// Broker memory while `flooders` devices publish QoS 0 as fast as they can (64-byte payloads,
/// offered up to 20,000 msg/s each) for `secs` seconds to a drained subscriber.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flood {
    /// Messages the flooders managed to write (the broker may stop reading: backpressure).
    pub written: u64,
    /// Messages the drain subscriber received during the flood and 3 s after.
    pub received: u64,
    /// Broker RSS before, at the peak, and 5 s after the flood, KiB.
    pub rss_before_kib: u64,
    /// See `rss_before_kib`.
    pub rss_peak_kib: u64,
    /// See `rss_before_kib`.
    pub rss_after_kib: u64,
}

/// Runs a publish flood (see [`Flood`]) and samples the broker's RSS every 100 ms.
pub async fn flood(t: &Target, pki: &Pki, flooders: usize, secs: u64) -> anyhow::Result<Flood> {
    let rss_before = rss_kib(t.pid);
    let mut drain = session_from(
        t.port,
        source(60, 100),
        pki.client("backend-9"),
        "backend-9",
        true,
    )
    .await?;
    drain
        .write_all(&raw::subscribe(true, 1, "devices/+/telemetry", 0))
        .await?;
    let _ = raw::read_packet(&mut drain).await?;
    let received = Arc::new(AtomicU64::new(0));
    let r2 = received.clone();
    // Counted during the flood and 3 s after it: a rate-limited broker keeps reading what the
    // flooders left in their sockets' kernel buffers at the allowed rate long after they left.
    let counted_until = Instant::now() + Duration::from_secs(secs + 3);
    let drainer = tokio::spawn(async move {
        let mut r = BufReader::with_capacity(64 * 1024, drain);
        loop {
            let left = counted_until.saturating_duration_since(Instant::now());
            match raw::read_timeout(&mut r, left).await {
                Some(Ok(_)) => r2.fetch_add(1, Ordering::Relaxed),
                _ => break,
            };
        }
    });
    let sampler = PeakRss::start(t.pid, rss_before, Duration::from_millis(100));
    let written = Arc::new(AtomicU64::new(0));
    let mut tasks = vec![];
    for f in 0..flooders {
        let id = format!("flood-{f}");
        let mut io = session_from(t.port, source(70 + f, 100), pki.client(&id), &id, true).await?;
        let written = written.clone();
        tasks.push(tokio::spawn(async move {
            let topic = format!("devices/{id}/telemetry");
            let one = raw::publish(true, &topic, 0, 0, false, &[0x55; 64]);
            let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 200).collect();
            let end = Instant::now() + Duration::from_secs(secs);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while Instant::now() < end {
                tick.tick().await;
                let left = end.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, io.write_all(&batch)).await {
                    Ok(Ok(())) => written.fetch_add(200, Ordering::Relaxed),
                    _ => break,
                };
            }
            // Dropped without DISCONNECT: the flooder just goes away.
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let _ = drainer.await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_peak = sampler.stop().await;
    Ok(Flood {
        written: written.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        rss_before_kib: rss_before,
        rss_peak_kib: rss_peak,
        rss_after_kib: rss_kib(t.pid),
    })
}
