//! Durable issuance per second with the intermediate key in a PKCS#11 token (SoftHSM2):
//! `IdentityService::issue` from N concurrent tasks on SQLite, first certificates of fresh
//! devices. Shows whether token latency stalls the runtime and serialises issuance.
//!
//! ```text
//! BENCH_ROUNDS=3 BENCH_PER_ROUND=2000 cargo bench -p ironroot-identity --bench hsm_issuance
//! ```
//!
//! Environment: `BENCH_ROUNDS` (default 3), `BENCH_PER_ROUND` (default 2000),
//! `BENCH_CONCURRENCY` (default 64). SoftHSM reads `SOFTHSM2_CONF` when the module loads and
//! the environment cannot be changed safely in-process, so the benchmark re-runs itself with
//! the variable pointing at a fresh token in a temporary directory.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironroot_audit::Audit;
use ironroot_identity::{IdentityOptions, IdentityService, IssuePurpose, IssueRequest};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, OnlineKeyBackend,
    OnlineSecrets, Passphrase, Pin,
};
use ironroot_store::{NewDevice, Store};
use time::OffsetDateTime;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "ironroot-bench";
const PIN: &str = "24681357";
const CHILD: &str = "IRONROOT_HSM_BENCH_DIR";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
        return;
    }
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} missing: apt-get install softhsm2"
    );
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let ok = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--so-pin", "12345678", "--pin", PIN])
        .output()
        .expect("softhsm2-util is required")
        .status
        .success();
    assert!(ok, "softhsm2-util --init-token failed");
    let status = Command::new(std::env::current_exe().unwrap())
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
}

fn child(tmp: &Path) {
    let data = tmp.join("data");
    CaDirectory::new(&data)
        .init(
            InitOptions {
                root_passphrase: Passphrase::new(b"benchmark root passphrase".to_vec()).unwrap(),
                online: Some(OnlineKeyBackend::Pkcs11 {
                    module: MODULE.into(),
                    token_label: TOKEN.into(),
                    pin: Pin::new(PIN.into()),
                }),
                kdf: KdfParams::MINIMUM,
                hierarchy: HierarchyPolicy::default(),
                operator: DeviceId::parse("admin").unwrap(),
            },
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let csr = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .arg("-keyout")
        .arg(tmp.join("bench.key.pem"))
        .args(["-subj", "/O=bench", "-sha256"])
        .output()
        .expect("openssl is required")
        .stdout;
    let rounds = env_num("BENCH_ROUNDS", 3);
    let per_round = env_num("BENCH_PER_ROUND", 2000);
    let conc = env_num("BENCH_CONCURRENCY", 64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let secrets = OnlineSecrets {
            passphrase: None,
            pkcs11_pin: Some(Pin::new(PIN.into())),
        };
        let ca = CaDirectory::new(&data)
            .open_online(&secrets, OffsetDateTime::now_utc())
            .unwrap();
        let store = Store::open_data_dir(&data).await.unwrap();
        let audit = Arc::new(Audit::open_store(&store, &data).await.unwrap());
        let service = IdentityService::open(ca, store.clone(), audit, IdentityOptions::new(&data))
            .await
            .unwrap();
        let mut rates = Vec::new();
        let mut lags = Vec::new();
        for r in 0..rounds {
            let prefix = format!("hsm-{r}");
            let mut tx = store.begin().await.unwrap();
            for i in 0..per_round {
                tx.add_device(&NewDevice::new(format!("{prefix}-{i}")))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            let (rate, lag) = round(&service, &csr, &prefix, per_round, conc).await;
            println!(
                "round {r}: {rate:.0} issuances/s, worst 1 ms timer lag {:.1} ms",
                lag.as_secs_f64() * 1e3
            );
            rates.push(rate);
            lags.push(lag.as_secs_f64() * 1e3);
        }
        rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
        lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "hsm_issuance (SoftHSM2, SQLite, {conc} tasks, {per_round}/round, {rounds} rounds): \
             median {:.0}/s (min {:.0}, max {:.0}); worst timer lag median {:.1} ms (max {:.1})",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1],
            lags[lags.len() / 2],
            lags[lags.len() - 1],
        );
        store.close().await;
    });
}

/// One round: issuances per second, and the worst lateness of a 1 ms timer meanwhile.
async fn round(
    service: &IdentityService,
    csr: &[u8],
    prefix: &str,
    n: usize,
    conc: usize,
) -> (f64, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(1)).await;
                worst = worst.max(t.elapsed().saturating_sub(Duration::from_millis(1)));
            }
            worst
        })
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (service, next) = (service.clone(), Arc::clone(&next));
        let (csr, prefix) = (csr.to_vec(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                service
                    .issue(IssueRequest {
                        device: DeviceId::parse(&format!("{prefix}-{i}")).unwrap(),
                        csr: csr.clone(),
                        actor: "service:bench".into(),
                        source: None,
                        purpose: IssuePurpose::Enroll,
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    (rate, ticker.await.unwrap())
}
