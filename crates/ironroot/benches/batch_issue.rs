//! `ironroot ca issue --csr-dir` (one CA unlock, a batch through the identity service) against
//! single `ironroot ca issue` calls (one argon2id unlock each), on a SQLite data directory
//! with the default KDF cost. CSRs are made in Rust (P-256, CN = device id).
//!
//! ```text
//! BENCH_N=10000 BENCH_ROUNDS=3 BENCH_SINGLE=10 cargo bench -p ironroot --bench batch_issue
//! ```

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ironroot_element::{SecureElement, SoftwareElement};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ironroot(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env("IRONROOT_ROOT_PASSPHRASE", "benchmark root passphrase")
        .env("IRONROOT_DATA_DIR", data);
    cmd
}

fn ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Registers `<prefix>-<i>` for i < n (one registry transaction) and writes their CSRs to `dir`.
fn prepare(data: &Path, dir: &Path, prefix: &str, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        let element = SoftwareElement::ephemeral().unwrap();
        let csr = ironroot_device::csr(&element.generate("identity").unwrap(), &id).unwrap();
        std::fs::write(dir.join(format!("{id}.csr")), csr).unwrap();
        ids.push(id);
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = ironroot_store::Store::open_data_dir(data).await.unwrap();
            let mut tx = store.begin().await.unwrap();
            for id in &ids {
                tx.add_device(&ironroot_store::NewDevice::new(id.as_str()))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            store.close().await;
        });
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let n = env_num("BENCH_N", 10_000);
    let rounds = env_num("BENCH_ROUNDS", 3);
    let single = env_num("BENCH_SINGLE", 10);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&mut ironroot(&data, &["ca", "init"]));

    let mut rates = Vec::new();
    let mut walls = Vec::new();
    for r in 0..rounds {
        let csrs = tmp.path().join(format!("csrs-{r}"));
        let certs = tmp.path().join(format!("certs-{r}"));
        prepare(&data, &csrs, &format!("fab{r}"), n);
        let start = Instant::now();
        let out = ok(&mut ironroot(
            &data,
            &[
                "ca",
                "issue",
                "--csr-dir",
                csrs.to_str().unwrap(),
                "--out-dir",
                certs.to_str().unwrap(),
            ],
        ));
        let wall = start.elapsed().as_secs_f64();
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["issued"], n, "{summary}");
        println!(
            "round {r}: {n} certificates in {wall:.2} s wall ({:.0}/s); summary {summary}",
            n as f64 / wall
        );
        rates.push(n as f64 / wall);
        walls.push(wall);
    }

    let csrs = tmp.path().join("single");
    prepare(&data, &csrs, "one", single);
    let mut per_call = Vec::new();
    for i in 0..single {
        let id = format!("one-{i:05}");
        let csr = csrs.join(format!("{id}.csr"));
        let out = tmp.path().join(format!("{id}.crt.pem"));
        let start = Instant::now();
        ok(&mut ironroot(
            &data,
            &[
                "ca",
                "issue",
                "--device",
                &id,
                "--csr",
                csr.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        ));
        per_call.push(start.elapsed().as_secs_f64());
    }
    let (rate, rate_min, rate_max) = stats(rates);
    let (wall, wall_min, wall_max) = stats(walls);
    let (call, call_min, call_max) = stats(per_call);
    println!(
        "batch ({n} CSRs, {rounds} rounds): median {rate:.0} certs/s (min {rate_min:.0}, max \
         {rate_max:.0}); wall median {wall:.2} s ({wall_min:.2}-{wall_max:.2})"
    );
    println!(
        "single `ca issue` ({single} calls): median {call:.3} s/call ({call_min:.3}-{call_max:.3}) \
         = {:.1} certs/s; {n} devices would take {:.0} s",
        1.0 / call,
        call * n as f64
    );
}
