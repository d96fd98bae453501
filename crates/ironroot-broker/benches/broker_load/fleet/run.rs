//! The fleet-shaped benchmark's driver (`broker_load fleet [quick]`): both brokers with their
//! shipped defaults, the connect / ingest ladder / flood runs of the parent module, and the
//! markdown summary; plus `broker_load idle N` for heap profiling.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::{Ironroot, Mosquitto, fleet, load, median, num_cpus, pki};

/// `broker_load fleet [quick]`: the fleet-shaped benchmark, both brokers with shipped defaults.
pub async fn fleet_run(quick: bool) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ironroot-broker-fleet-{}", std::process::id()));
    let pki = pki::Pki::create(&dir);
    let iron = Ironroot::start(&dir, true)?;
    let mosq = Mosquitto::start(&pki, true)?;
    let targets = [&iron.target, &mosq.target];
    println!(
        "machine: {} CPUs, load {}; both brokers with their shipped default limits",
        num_cpus(),
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );

    // 1. Connects/s from 50 source addresses.
    let (n, rounds) = if std::env::var_os("FLEET_FLOOD_ONLY").is_some() {
        (10, 1)
    } else if quick {
        (500, 1)
    } else {
        (2000, 3)
    };
    println!(
        "\n## new mTLS connections/s from 50 source addresses ({n}, 64 concurrent, {rounds} rounds)"
    );
    let mut conn = [vec![], vec![]];
    for round in 0..rounds {
        for (ti, t) in targets.iter().enumerate() {
            let cfgs: Vec<_> = (0..n)
                .map(|i| {
                    let id = format!("fc-{round}-{ti}-{i}");
                    let c = pki.client(&id);
                    (id, c)
                })
                .collect();
            let (r, failed) = fleet::connect_rate(t, &cfgs, 50, 64).await?;
            println!("  round {round} {}: {r:.0}/s, {failed} refused", t.name);
            conn[ti].push(r);
        }
    }
    let conn = [median(&mut conn[0]), median(&mut conn[1])];

    // 2. Ingest ladder: one backend, then a shared-subscription group of four.
    let (devices, secs, rates): (usize, u64, &[u64]) =
        if std::env::var_os("FLEET_FLOOD_ONLY").is_some() {
            (1, 1, &[])
        } else if quick {
            (200, 5, &[10, 50])
        } else {
            (1000, 10, &[10, 25, 35, 50, 100])
        };
    let mut best = [[0u64; 2]; 2];
    let mut rows = vec![];
    for (bi, backends) in [1usize, 4].into_iter().enumerate() {
        for &rate in rates {
            println!(
                "\n## {devices} devices × {rate} msg/s QoS 1 (offered {}/s) → {}",
                devices as u64 * rate,
                if backends == 1 {
                    "1 backend".to_string()
                } else {
                    format!("$share group of {backends}")
                }
            );
            for (ti, t) in targets.iter().enumerate() {
                let shape = fleet::Ingest {
                    devices,
                    sources: 50,
                    rate,
                    secs,
                    backends,
                    window: 16,
                };
                let r = match fleet::ingest(t, &pki, shape).await {
                    Ok(r) => r,
                    Err(e) => {
                        println!("  {}: not measured: {e:#}", t.name);
                        continue;
                    }
                };
                let ok = r.lossless() && r.p99_us <= 50_000;
                println!(
                    "  {}: scheduled {}, acked {}, acked+delivered {}, dup {}, {:.0} msg/s, p50 {} µs, p99 {} µs, RSS {} → peak {} KiB{}",
                    t.name,
                    r.scheduled,
                    r.acked,
                    r.delivered_acked,
                    r.duplicates,
                    r.per_sec,
                    r.p50_us,
                    r.p99_us,
                    r.rss_start_kib,
                    r.rss_peak_kib,
                    if ok {
                        "  ✔ lossless, p99 ≤ 50 ms"
                    } else {
                        ""
                    }
                );
                if ok {
                    best[bi][ti] = best[bi][ti].max(devices as u64 * rate);
                }
                rows.push((backends, rate, t.name, r));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }

    // 3. Memory under a publish flood, on fresh brokers (the ladder left queues' memory with
    // the allocator, and a rate-limited broker keeps reading what the flooders left in their
    // sockets for minutes): 2 devices, 64-byte QoS 0, as fast as they can.
    drop(iron);
    drop(mosq);
    let iron = Ironroot::start(&dir, true)?;
    let mosq = Mosquitto::start(&pki, true)?;
    let targets = [&iron.target, &mosq.target];
    let flood_secs = if quick { 5 } else { 10 };
    println!("\n## publish flood: 2 devices, QoS 0, {flood_secs} s");
    let mut floods = vec![];
    for t in targets {
        let f = fleet::flood(t, &pki, 2, flood_secs).await?;
        println!(
            "  {}: written {}, delivered {}, RSS before {} KiB, peak {} KiB, 5 s after {} KiB",
            t.name, f.written, f.received, f.rss_before_kib, f.rss_peak_kib, f.rss_after_kib
        );
        floods.push(f);
    }

    println!("\n## summary (markdown)\n");
    println!("| measure | ironroot | Mosquitto 2 | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| new mTLS connections/s from 50 addresses (median of {rounds}) | {:.0} | {:.0} | {:.2}x |",
        conn[0],
        conn[1],
        conn[0] / conn[1]
    );
    for (bi, label) in ["1 backend", "$share group of 4"].iter().enumerate() {
        println!(
            "| highest lossless QoS 1 ingest with p99 ≤ 50 ms, {label} (offered msg/s) | {} | {} | {} |",
            best[bi][0],
            best[bi][1],
            if best[bi][1] > 0 {
                format!("{:.2}x", best[bi][0] as f64 / best[bi][1] as f64)
            } else {
                "—".into()
            }
        );
    }
    for (backends, rate, name, r) in &rows {
        println!(
            "| {name}: {devices} × {rate} msg/s → {backends} backend(s) | acked {}/{}, delivered {} of acked, p99 {:.1} ms, peak RSS {:.0} MB | | |",
            r.acked,
            r.scheduled,
            r.delivered_acked,
            r.p99_us as f64 / 1000.0,
            r.rss_peak_kib as f64 / 1024.0
        );
    }
    println!(
        "| RSS during a 2-device QoS 0 flood, before / peak / after (MB) | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | |",
        floods[0].rss_before_kib as f64 / 1024.0,
        floods[0].rss_peak_kib as f64 / 1024.0,
        floods[0].rss_after_kib as f64 / 1024.0,
        floods[1].rss_before_kib as f64 / 1024.0,
        floods[1].rss_peak_kib as f64 / 1024.0,
        floods[1].rss_after_kib as f64 / 1024.0
    );
    drop(iron);
    drop(mosq);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `broker_load idle N`: only ironroot (shipped defaults) holding N idle mTLS connections, for
/// heap profiling with `BROKER_LOAD_WRAP` (the broker's pid is the wrapper's when wrapped).
pub async fn idle_only(n: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ironroot-broker-idle-{}", std::process::id()));
    let pki = pki::Pki::create(&dir);
    let mut iron = Ironroot::start(&dir, true)?;
    let base = load::rss_kib(iron.target.pid);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let id = format!("idle-{i}");
        let (cfg, port) = (pki.client(&id), iron.target.port);
        tasks.push(tokio::spawn(async move {
            let r = fleet::session_from(port, fleet::source(i, 200), cfg, &id, false).await;
            drop(permit);
            r
        }));
    }
    let mut held = Vec::with_capacity(n);
    for t in tasks {
        held.push(t.await??);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = load::rss_kib(iron.target.pid);
    println!(
        "idle {n}: RSS {base} → {rss} KiB, {:.1} KiB per connection",
        (rss - base) as f64 / n as f64
    );
    drop(held);
    writeln!(iron.stdin, "exit")?;
    iron.stdin.flush()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while iron.child.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(iron);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
