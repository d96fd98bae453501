//! The load scenarios, each run against one broker (ironroot or Mosquitto).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::pki::{Pki, server_name};
use crate::raw::{self, ConnectOpts, Tls};

/// A broker under test.
pub struct Target {
    pub name: &'static str,
    pub port: u16,
    pub pid: u32,
}

pub async fn dial(port: u16, cfg: Arc<ClientConfig>) -> anyhow::Result<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    Ok(TlsConnector::from(cfg).connect(server_name(), tcp).await?)
}

/// TCP + mutual TLS + CONNECT/CONNACK; returns the open stream.
pub async fn session(port: u16, cfg: Arc<ClientConfig>, id: &str) -> anyhow::Result<Tls> {
    let mut io = dial(port, cfg).await?;
    let (_, rc) = raw::mqtt_connect(&mut io, id, &ConnectOpts::default()).await?;
    anyhow::ensure!(rc == 0, "CONNACK {rc:#x} for {id}");
    Ok(io)
}

/// New connections per second: `cfgs.len()` full mutual-TLS handshakes + CONNECT/CONNACK, each
/// with its own certificate, `conc` at a time. Each connection is closed after its CONNACK.
pub async fn connect_rate(
    t: &Target,
    cfgs: &[(String, Arc<ClientConfig>)],
    conc: usize,
) -> anyhow::Result<f64> {
    let sem = Arc::new(tokio::sync::Semaphore::new(conc));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(cfgs.len());
    for (id, cfg) in cfgs {
        let permit = sem.clone().acquire_owned().await?;
        let (id, cfg, port, failed) = (id.clone(), cfg.clone(), t.port, failed.clone());
        tasks.push(tokio::spawn(async move {
            let r = async {
                let mut io = session(port, cfg, &id).await?;
                io.write_all(&raw::disconnect()).await?;
                io.shutdown().await?;
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = r
                && failed.fetch_add(1, Ordering::Relaxed) < 3
            {
                eprintln!("  {}: connect failed: {e}", id);
            }
            drop(permit);
        }));
    }
    for task in tasks {
        task.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = cfgs.len() as u64 - failed.load(Ordering::Relaxed);
    anyhow::ensure!(
        failed.load(Ordering::Relaxed) == 0,
        "{} of {} connections failed",
        failed.load(Ordering::Relaxed),
        cfgs.len()
    );
    Ok(ok as f64 / secs)
}

/// Resident set size of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Idle connections held open in steps (e.g. 1k, 5k, 15k): broker RSS per connection at each.
pub async fn idle(
    t: &Target,
    pki: &Pki,
    steps: &[usize],
) -> anyhow::Result<Vec<(usize, u64, f64)>> {
    let base = rss_kib(t.pid);
    let mut held: Vec<Tls> = Vec::new();
    let mut out = Vec::new();
    for &n in steps {
        let need = n - held.len();
        let cfgs: Vec<_> = (held.len()..n)
            .map(|i| {
                let id = format!("idle-{i}");
                let cfg = pki.client(&id);
                (id, cfg)
            })
            .collect();
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::with_capacity(need);
        for (id, cfg) in cfgs {
            let permit = sem.clone().acquire_owned().await?;
            let port = t.port;
            tasks.push(tokio::spawn(async move {
                let r = session(port, cfg, &id).await;
                drop(permit);
                r
            }));
        }
        for task in tasks {
            held.push(task.await??);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = rss_kib(t.pid);
        let per = (rss as f64 - base as f64) / n as f64;
        println!(
            "  {}: {n} idle mTLS connections, RSS {rss} KiB, {per:.1} KiB per connection",
            t.name
        );
        out.push((n, rss, per));
    }
    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(out)
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Shape of a publish run.
#[derive(Debug, Clone, Copy)]
pub struct PublishLoad {
    pub qos: u8,
    pub publishers: usize,
    pub each: usize,
    pub window: usize,
    /// Messages per second per publisher; 0 = as fast as possible.
    pub rate: u64,
}

/// Result of a publish run.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub sent: usize,
    pub received: usize,
    pub per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// `publishers` devices publish `each` messages to their telemetry topic (QoS `qos`, at most
/// `window` unacknowledged, `rate` messages/s each or as fast as possible when 0); one backend
/// subscribed to `devices/+/telemetry` receives them. Latency = receive − send time.
pub async fn throughput(t: &Target, pki: &Pki, load: PublishLoad) -> anyhow::Result<Throughput> {
    let PublishLoad {
        qos,
        publishers,
        each,
        window,
        rate,
    } = load;
    let origin = Instant::now();
    let total = publishers * each;
    let mut sub = session(t.port, pki.client("backend"), "backend").await?;
    sub.write_all(&raw::subscribe(false, 1, "devices/+/telemetry", qos))
        .await?;
    let ack = raw::read_packet(&mut sub).await?;
    anyhow::ensure!(
        ack.kind() == 0x90 && ack.body[2] < 0x80,
        "SUBACK {:?}",
        ack.body
    );
    let (sr, mut sw) = tokio::io::split(sub);
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<u16>();
    let _acker = AbortOnDrop(tokio::spawn(async move {
        // PUBACKs that are ready together go out in one write (one TLS record), as a real
        // client's write buffer would send them; the same for both brokers.
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
    }));
    let recv = tokio::spawn(async move {
        let mut r = BufReader::with_capacity(64 * 1024, sr);
        let mut lat = Vec::with_capacity(total);
        let mut last = origin;
        while lat.len() < total {
            match raw::read_timeout(&mut r, Duration::from_secs(3)).await {
                Some(Ok(p)) if p.kind() == 0x30 => {
                    let (_, pid, payload) = p.publish(false);
                    if let Some(pid) = pid {
                        let _ = ack_tx.send(pid);
                    }
                    let sent = u64::from_be_bytes(payload[..8].try_into().unwrap());
                    last = Instant::now();
                    lat.push(origin.elapsed().as_micros() as u64 - sent);
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        (lat, last)
    });
    let mut pubs = Vec::new();
    for i in 0..publishers {
        let id = format!("pub-{i}");
        pubs.push((id.clone(), session(t.port, pki.client(&id), &id).await?));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (id, io) in pubs {
        tasks.push(tokio::spawn(async move {
            let topic = format!("devices/{id}/telemetry");
            let (r, mut w) = tokio::io::split(io);
            let credit = Arc::new(tokio::sync::Semaphore::new(window));
            let c2 = credit.clone();
            // Aborted with this task, so the connection closes when the run ends.
            let _reader = AbortOnDrop(tokio::spawn(async move {
                let mut r = BufReader::new(r);
                while let Ok(p) = raw::read_packet(&mut r).await {
                    if p.kind() == 0x40 {
                        c2.add_permits(1);
                    }
                }
            }));
            let mut payload = [0u8; 64];
            let t0 = Instant::now();
            for k in 0..each {
                if let Some(us) = (k as u64 * 1_000_000).checked_div(rate) {
                    tokio::time::sleep_until((t0 + Duration::from_micros(us)).into()).await;
                }
                if qos > 0 {
                    credit.acquire().await.unwrap().forget();
                }
                payload[..8].copy_from_slice(&(origin.elapsed().as_micros() as u64).to_be_bytes());
                let pid = (k % 65_000 + 1) as u16;
                if w.write_all(&raw::publish(false, &topic, qos, pid, false, &payload))
                    .await
                    .is_err()
                {
                    break;
                }
                if rate > 0 {
                    let _ = w.flush().await;
                }
            }
            let _ = w.flush().await;
            if qos > 0 {
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    credit.acquire_many(window as u32),
                )
                .await;
            }
            tokio::time::sleep(Duration::from_secs(4)).await;
            drop(w);
        }));
    }
    let (mut lat, last) = recv.await?;
    for task in tasks {
        task.abort();
    }
    let received = lat.len();
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((received as f64 * q) as usize).min(received.saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let secs = last
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(1e-6);
    Ok(Throughput {
        sent: total,
        received,
        per_sec: received as f64 / secs,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
    })
}
