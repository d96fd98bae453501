//! Load generator: ironroot's broker and Mosquitto 2, side by side, same certificates, same
//! authorization (template policy vs. ACL pattern file), every connection with its own client
//! certificate.
//!
//! ```text
//! cargo bench -p ironroot-broker --bench broker_load            # full run (a few minutes)
//! cargo bench -p ironroot-broker --bench broker_load -- quick   # small sizes, smoke test
//! cargo bench -p ironroot-broker --bench broker_load -- fleet   # fleet-shaped, shipped defaults
//! ```
//!
//! Scenarios: new mTLS connections per second; idle connections and broker RSS per connection
//! at 1k/5k/15k; QoS 0 and QoS 1 throughput (10 publishers → 1 subscriber) with p50/p99
//! latency, and a paced QoS 1 run for latency; revocation → disconnect and policy change →
//! enforced delay (ironroot only: Mosquitto has no live equivalent).
//!
//! `fleet` (see `fleet.rs`): both brokers with their shipped default limits, 1,000 devices from
//! 50 loopback source addresses publishing paced QoS 1 into one backend or a shared-subscription
//! group of four, every acknowledged message accounted for; connects/s from 50 addresses;
//! memory under a publish flood.
//!
//! The broker runs in a child process (`broker_load serve DIR WORKERS`), as does Mosquitto.
#![allow(missing_docs)]

#[path = "../../tests/integration/raw.rs"]
mod raw;

mod fleet;
mod load;
mod pki;
mod serve;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use load::{Target, Throughput};
use tokio::io::AsyncReadExt;

pub use load::rss_kib;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let defaults = args.get(4).map(String::as_str) == Some("defaults");
        serve::serve(std::path::Path::new(&args[2]), args[3].parse()?, defaults);
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if args.iter().any(|a| a == "latency") {
        return rt.block_on(latency_rounds());
    }
    if let Some(n) = args.iter().position(|a| a == "idle") {
        let n = args.get(n + 1).and_then(|v| v.parse().ok()).unwrap_or(1000);
        return rt.block_on(fleet::run::idle_only(n));
    }
    if args.iter().any(|a| a == "fleet") {
        return rt.block_on(fleet::run::fleet_run(quick));
    }
    rt.block_on(run(quick))
}

struct Ironroot {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    target: Target,
}

impl Ironroot {
    fn start(dir: &std::path::Path, shipped_defaults: bool) -> anyhow::Result<Ironroot> {
        let limits = if shipped_defaults {
            "defaults"
        } else {
            "anchor"
        };
        // BROKER_LOAD_WRAP runs the broker under a tool, e.g. "valgrind --tool=massif".
        let wrap = std::env::var("BROKER_LOAD_WRAP").unwrap_or_default();
        let mut argv: Vec<String> = wrap.split_whitespace().map(str::to_string).collect();
        argv.push(std::env::current_exe()?.display().to_string());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .args(["serve", &dir.display().to_string(), "2", limits])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut it = line.split_whitespace();
        anyhow::ensure!(it.next() == Some("ready"), "serve said {line:?}");
        let port = it.next().unwrap().parse()?;
        let pid = it.next().unwrap().parse()?;
        Ok(Ironroot {
            child,
            stdin,
            stdout,
            target: Target {
                name: "ironroot",
                port,
                pid,
            },
        })
    }

    fn cmd(&mut self, c: &str) -> anyhow::Result<Vec<String>> {
        writeln!(self.stdin, "{c}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let parts: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        anyhow::ensure!(
            parts.first().map(String::as_str) == Some("ok"),
            "{c}: {line}"
        );
        Ok(parts)
    }
}

impl Drop for Ironroot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Mosquitto {
    child: Child,
    target: Target,
}

impl Mosquitto {
    fn start(pki: &pki::Pki, shipped_defaults: bool) -> anyhow::Result<Mosquitto> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let conf = pki::mosquitto_config(pki, port, shipped_defaults);
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()?;
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Mosquitto {
            child,
            target: Target {
                name: "mosquitto",
                port,
                pid,
            },
        })
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

async fn run(quick: bool) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ironroot-broker-bench-{}", std::process::id()));
    let pki = pki::Pki::create(&dir);
    let mut iron = Ironroot::start(&dir, false)?;
    let mosq = Mosquitto::start(&pki, false)?;
    println!(
        "ironroot pid {} port {}; mosquitto pid {} port {}",
        iron.target.pid, iron.target.port, mosq.target.pid, mosq.target.port
    );
    println!(
        "machine: {} CPUs, load {}",
        num_cpus(),
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    let targets = [&iron.target, &mosq.target];

    // 1. New mTLS connections per second.
    let (n, rounds) = if quick { (300, 1) } else { (2000, 3) };
    println!("\n## new mTLS connections/s ({n} connections, 64 concurrent, {rounds} rounds)");
    let mut rates: Vec<Vec<f64>> = vec![vec![], vec![]];
    for round in 0..rounds {
        for (ti, t) in targets.iter().enumerate() {
            let cfgs: Vec<_> = (0..n)
                .map(|i| {
                    let id = format!("cr-{round}-{ti}-{i}");
                    let c = pki.client(&id);
                    (id, c)
                })
                .collect();
            let r = load::connect_rate(t, &cfgs, 64).await?;
            println!("  round {round} {}: {r:.0}/s", t.name);
            rates[ti].push(r);
        }
    }
    let conn = [median(&mut rates[0]), median(&mut rates[1])];
    println!(
        "  median: ironroot {:.0}/s, mosquitto {:.0}/s, ratio {:.2}x",
        conn[0],
        conn[1],
        conn[0] / conn[1]
    );

    // 2. Idle connections and RSS per connection.
    let steps: Vec<usize> = if quick {
        vec![200, 500]
    } else {
        vec![1_000, 5_000, 15_000]
    };
    println!("\n## idle mTLS connections, broker RSS per connection");
    let mut idle = vec![];
    for t in targets {
        idle.push(load::idle(t, &pki, &steps).await?);
    }

    // 3. Throughput with policies on.
    let each = if quick { 2_000 } else { 10_000 };
    let mut tp: Vec<(String, [Throughput; 2])> = vec![];
    for (label, qos, window, rate, pubs, each) in [
        (
            "QoS 0, 10 publishers → 1 subscriber",
            0u8,
            1usize,
            0u64,
            10usize,
            each,
        ),
        (
            "QoS 1, 10 publishers → 1 subscriber, 16 in flight",
            1,
            16,
            0,
            10,
            each / 2,
        ),
        (
            "QoS 1 paced, 20 publishers × 500 msg/s",
            1,
            16,
            500,
            20,
            if quick { 500 } else { 2_500 },
        ),
        (
            "QoS 1 paced, 20 publishers × 1,500 msg/s",
            1,
            16,
            1_500,
            20,
            if quick { 1_500 } else { 7_500 },
        ),
    ] {
        println!("\n## {label}");
        let mut res = vec![];
        for t in targets {
            let shape = load::PublishLoad {
                qos,
                publishers: pubs,
                each,
                window,
                rate,
            };
            let r = load::throughput(t, &pki, shape).await?;
            println!(
                "  {}: {}/{} received, {:.0} msg/s, p50 {} µs, p99 {} µs",
                t.name, r.received, r.sent, r.per_sec, r.p50_us, r.p99_us
            );
            res.push(r);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tp.push((label.to_string(), [res[0], res[1]]));
    }

    // 4. Revocation → disconnect (client-observed), ironroot.
    let samples = if quick { 5 } else { 50 };
    println!("\n## revocation → disconnect ({samples} samples, client-observed)");
    let mut revoke = vec![];
    for i in 0..samples {
        let id = format!("rv-{i}");
        let (cfg, serial) = pki.client_with_serial(&id);
        let mut io = load::session(iron.target.port, cfg, &id).await?;
        let hex = serial.to_string();
        let t0 = Instant::now();
        let r = iron.cmd(&format!("revoke {hex}"))?;
        anyhow::ensure!(r[1] == "1", "revoke closed {} sessions", r[1]);
        let mut buf = [0u8; 256];
        tokio::time::timeout(Duration::from_secs(5), async {
            while !matches!(io.read(&mut buf).await, Ok(0) | Err(_)) {}
        })
        .await?;
        revoke.push(t0.elapsed());
    }
    let rv = (pct(&mut revoke, 0.5), pct(&mut revoke, 0.99));
    println!("  p50 {:?}, p99 {:?}", rv.0, rv.1);

    // 5. Policy change → enforced, ironroot: the backend loses telemetry while a device
    // publishes; measured from the command to the removed subscription, and checked end to end.
    println!("\n## policy change → enforced ({samples} samples)");
    let mut enforced = vec![];
    let mut leaked = 0;
    for i in 0..samples {
        let mut sub = load::session(iron.target.port, pki.client("backend"), "backend").await?;
        iron.cmd("allow-backend")?;
        use tokio::io::AsyncWriteExt;
        sub.write_all(&raw::subscribe(false, 1, "devices/+/telemetry", 0))
            .await?;
        let _ = raw::read_packet(&mut sub).await?;
        let id = format!("pc-{i}");
        let mut dev = load::session(iron.target.port, pki.client(&id), &id).await?;
        let topic = format!("devices/{id}/telemetry");
        dev.write_all(&raw::publish(false, &topic, 0, 0, false, b"before"))
            .await?;
        anyhow::ensure!(
            raw::read_timeout(&mut sub, Duration::from_secs(2))
                .await
                .is_some(),
            "allowed message not delivered"
        );
        let t0 = Instant::now();
        let r = iron.cmd("deny-backend")?;
        enforced.push(t0.elapsed());
        anyhow::ensure!(r[1] == "1", "policy change removed {} subscriptions", r[1]);
        dev.write_all(&raw::publish(false, &topic, 0, 0, false, b"after"))
            .await?;
        if let Some(Ok(p)) = raw::read_timeout(&mut sub, Duration::from_millis(300)).await
            && p.kind() == 0x30
        {
            leaked += 1;
        }
    }
    let pc = (pct(&mut enforced, 0.5), pct(&mut enforced, 0.99));
    println!(
        "  p50 {:?}, p99 {:?}, messages delivered after enforcement: {leaked}",
        pc.0, pc.1
    );

    println!("\n## summary (markdown)\n");
    println!("| measure | ironroot | Mosquitto 2 | ratio / target |");
    println!("|---|---|---|---|");
    println!(
        "| new mTLS connections/s (median of {rounds}) | {:.0} | {:.0} | {:.2}x (target ≥ 1.5x) |",
        conn[0],
        conn[1],
        conn[0] / conn[1]
    );
    for (i, n) in steps.iter().enumerate() {
        println!(
            "| RSS per idle mTLS connection at {n} | {:.1} KiB | {:.1} KiB | target ≤ 24 KiB |",
            idle[0][i].2, idle[1][i].2
        );
    }
    for (label, [a, b]) in &tp {
        println!(
            "| {label}: msg/s | {:.0} ({} of {}) | {:.0} ({} of {}) | {:.2}x (target ≥ 2x) |",
            a.per_sec,
            a.received,
            a.sent,
            b.per_sec,
            b.received,
            b.sent,
            a.per_sec / b.per_sec
        );
        println!(
            "| {label}: p50 / p99 latency | {} / {} µs | {} / {} µs | p99 no worse |",
            a.p50_us, a.p99_us, b.p50_us, b.p99_us
        );
    }
    println!(
        "| revocation → disconnect p50 / p99 | {:?} / {:?} | live session kept | target p99 ≤ 1 s |",
        rv.0, rv.1
    );
    println!(
        "| policy change → enforced p50 / p99 | {:?} / {:?} | ACL reload only on SIGHUP | target p99 ≤ 1 s |",
        pc.0, pc.1
    );
    drop(iron);
    drop(mosq);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `broker_load latency`: only the paced QoS 1 runs (10k and 30k msg/s), five rounds
/// alternating between the brokers, to see through the noise of a shared machine.
async fn latency_rounds() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ironroot-broker-bench-{}", std::process::id()));
    let pki = pki::Pki::create(&dir);
    let iron = Ironroot::start(&dir, false)?;
    let mosq = Mosquitto::start(&pki, false)?;
    println!(
        "machine: {} CPUs, load {}",
        num_cpus(),
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    for rate in [500u64, 1_500] {
        println!("\n## QoS 1 paced, 20 publishers × {rate} msg/s, 5 s per run, p50 / p99 µs");
        let mut p99 = [vec![], vec![]];
        for round in 0..5 {
            for (i, t) in [&iron.target, &mosq.target].into_iter().enumerate() {
                let shape = load::PublishLoad {
                    qos: 1,
                    publishers: 20,
                    each: 5 * rate as usize,
                    window: 16,
                    rate,
                };
                let r = load::throughput(t, &pki, shape).await?;
                println!(
                    "  round {round} {}: {}/{} received, p50 {} p99 {}",
                    t.name, r.received, r.sent, r.p50_us, r.p99_us
                );
                p99[i].push(r.p99_us as f64);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        println!(
            "  median p99: ironroot {:.0} µs, mosquitto {:.0} µs",
            median(&mut p99[0]),
            median(&mut p99[1])
        );
    }
    drop(iron);
    drop(mosq);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
