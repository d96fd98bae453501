//! Durable issuance per second: CSR verification + signing + registry transaction (group
//! commit) + audit entry, with N concurrent requesters, on SQLite and PostgreSQL; in the same
//! run, two anchors: Python `cryptography` issuing from the same CSR in a loop (in memory, not
//! durable) and `openssl x509 -req` in a loop (one process per certificate).
//!
//! ```text
//! IRONROOT_VENV=/work/main/.venv IRONROOT_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p ironroot-identity --bench durable_issuance
//! ```
//!
//! Environment: `BENCH_ROUNDS` (default 5), `BENCH_PER_ROUND` (issuances per round, default
//! 3000), `BENCH_CONCURRENCY` (comma list, default `64,256`), `BENCH_BACKENDS` (default
//! `sqlite,postgres`). Each round issues first certificates for fresh devices (manufactured →
//! provisioned), the enrollment case. PostgreSQL being unreachable fails the benchmark.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use ironroot_audit::Audit;
use ironroot_identity::{IdentityOptions, IdentityService, IssuePurpose, IssueRequest};
use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, OnlineKeyBackend,
    OnlineSecrets, Passphrase,
};
use ironroot_store::sqlx::{Connection as _, Executor as _, PgConnection};
use ironroot_store::{NewDevice, Store};
use time::OffsetDateTime;

const PASS: &str = "benchmark online passphrase";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn init_ca(dir: &Path) {
    CaDirectory::new(dir)
        .init(
            InitOptions {
                root_passphrase: Passphrase::new(b"benchmark root passphrase".to_vec()).unwrap(),
                online: Some(OnlineKeyBackend::EncryptedFile(
                    Passphrase::new(PASS.as_bytes().to_vec()).unwrap(),
                )),
                kdf: KdfParams::MINIMUM,
                hierarchy: HierarchyPolicy::default(),
                operator: DeviceId::parse("admin").unwrap(),
            },
            OffsetDateTime::now_utc(),
        )
        .unwrap();
}

fn make_csr(dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .arg("-keyout")
        .arg(dir.join("bench.key.pem"))
        .args(["-subj", "/O=bench", "-sha256"])
        .output()
        .expect("openssl is required");
    assert!(out.status.success());
    std::fs::write(dir.join("bench.csr.pem"), &out.stdout).unwrap();
    out.stdout
}

async fn open_store(backend: &str, dir: &Path) -> (Store, Option<String>) {
    match backend {
        "sqlite" => (Store::open_data_dir(dir).await.unwrap(), None),
        "postgres" => {
            let admin = std::env::var("IRONROOT_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("ironroot_bench_identity_{}", std::process::id());
            let mut conn = PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required: {e}"));
            conn.execute(ironroot_store::sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .unwrap();
            conn.execute(ironroot_store::sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {name}"
            )))
            .await
            .unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            let options = ironroot_store::StoreOptions::default().with_max_connections(16);
            let store = Store::open_with(&format!("{base}/{name}"), options)
                .await
                .unwrap();
            (store, Some(name))
        }
        other => panic!("unknown backend {other}"),
    }
}

async fn drop_pg(name: &str) {
    let admin = std::env::var("IRONROOT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    conn.execute(ironroot_store::sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await
    .unwrap();
}

/// Registers `n` devices named `<prefix>-<i>` in one transaction.
async fn register(store: &Store, prefix: &str, n: usize) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..n {
        tx.add_device(&NewDevice::new(format!("{prefix}-{i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn round(service: &IdentityService, csr: &[u8], prefix: &str, n: usize, conc: usize) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let service = service.clone();
        let csr = csr.to_vec();
        let next = Arc::clone(&next);
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    n as f64 / start.elapsed().as_secs_f64()
}

async fn audit_only(audit: &Arc<Audit>, n: usize, conc: usize) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (audit, next) = (Arc::clone(audit), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                audit
                    .record(
                        ironroot_audit::Event::new(
                            ironroot_audit::EventKind::CertIssued,
                            "service:bench",
                        )
                        .subject("device", "bench")
                        .detail("serial", "00112233445566778899aabbccddeeff")
                        .detail("fingerprint", "ab".repeat(32)),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn registry_only(store: &Store, prefix: &str, n: usize, conc: usize) -> f64 {
    let committer = store.group_committer(512);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (committer, next, prefix) = (committer.clone(), Arc::clone(&next), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let device = format!("{prefix}-{i}");
                let serial = ironroot_pki::Serial::random().unwrap();
                let new = ironroot_store::NewCertificate {
                    der: format!("bench DER {serial}").into_bytes(),
                    serial,
                    device_id: Some(device.clone()),
                    kind: ironroot_store::CertificateKind::Operational,
                    issuer: "bench".into(),
                    subject: format!("CN={device}"),
                    not_before: 1_700_000_000,
                    not_after: 1_800_000_000,
                };
                committer
                    .run(move |tx| {
                        Box::pin(async move {
                            tx.record_issued_certificate(&new).await?;
                            tx.set_device_state(&device, ironroot_store::DeviceState::Provisioned)
                                .await
                        })
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Single-threaded CSR verification + signing, nothing written: the CPU part.
fn sign_only(ca: &ironroot_pki::OnlineCa, csr: &[u8], n: usize) -> f64 {
    let policy = ironroot_pki::IssuancePolicy::default();
    let device = DeviceId::parse("bench-sign").unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let v = ironroot_pki::verify_csr(csr, &policy.csr).unwrap();
        ca.issuing()
            .issue_device(&v, &device, &policy, OffsetDateTime::now_utc())
            .unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

const PY_ANCHOR: &str = r#"
import sys, time, datetime, os
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
csr_pem = open(sys.argv[1], 'rb').read()
n = int(sys.argv[2])
ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'anchor CA')])
start = time.perf_counter()
for i in range(n):
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'dev-%d' % i)]))
        .issuer_name(ca_name).public_key(csr.public_key())
        .serial_number(int.from_bytes(os.urandom(16), 'big') >> 1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
    cert.public_bytes(serialization.Encoding.DER)
print(n / (time.perf_counter() - start))
"#;

fn python_anchor(dir: &Path, n: usize) -> Option<f64> {
    let venv = std::env::var("IRONROOT_VENV").unwrap_or_else(|_| ".venv".into());
    let py = Path::new(&venv).join("bin/python");
    let script = dir.join("anchor.py");
    std::fs::write(&script, PY_ANCHOR).unwrap();
    let out = Command::new(&py)
        .arg(&script)
        .arg(dir.join("bench.csr.pem"))
        .arg(n.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        panic!(
            "python anchor failed ({}): {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn openssl_anchor(dir: &Path, n: usize) -> f64 {
    let (ca_key, ca_crt) = (dir.join("anchor-ca.key"), dir.join("anchor-ca.crt"));
    if !ca_crt.exists() {
        let out = Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:P-256")
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca_crt)
            .args(["-subj", "/CN=anchor CA", "-days", "365"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let start = Instant::now();
    for _ in 0..n {
        let out = Command::new("openssl")
            .args([
                "x509",
                "-req",
                "-days",
                "90",
                "-CAcreateserial",
                "-sha256",
                "-in",
            ])
            .arg(dir.join("bench.csr.pem"))
            .arg("-CA")
            .arg(&ca_crt)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-out")
            .arg(dir.join("anchor.crt.pem"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rounds = env_num("BENCH_ROUNDS", 5);
    let per_round = env_num("BENCH_PER_ROUND", 3000);
    let concurrency: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "64,256".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_ca(dir);
    let csr = make_csr(dir);
    println!(
        "durable issuance (CSR verify + sign + registry commit + audit), {rounds} rounds of {per_round}"
    );
    for backend in backends.split(',') {
        let data = dir.join(backend);
        std::fs::create_dir_all(&data).unwrap();
        // Each backend gets its own data directory (audit key, CRL) sharing the CA files.
        copy_dir(&dir.join("pki"), &data.join("pki"));
        runtime.block_on(async {
            let (store, pg) = open_store(backend, &data).await;
            let audit = Arc::new(Audit::open_store(&store, &data).await.unwrap());
            let ca = CaDirectory::new(&data)
                .open_online(
                    &OnlineSecrets {
                        passphrase: Some(Passphrase::new(PASS.as_bytes().to_vec()).unwrap()),
                        pkcs11_pin: None,
                    },
                    OffsetDateTime::now_utc(),
                )
                .unwrap();
            if backend == "sqlite" {
                let mut v = Vec::new();
                for _ in 0..rounds {
                    v.push(sign_only(&ca, &csr, 2000));
                }
                let (m, lo, hi) = stats(v);
                println!("  stage: CSR verify + sign alone, one thread, nothing written: median {m:.0}/s (min {lo:.0}, max {hi:.0})");
            }
            let service =
                IdentityService::open(ca, store.clone(), audit, IdentityOptions::new(&data))
                    .await
                    .unwrap();
            for &conc in &concurrency {
                // Warm-up round, not counted.
                let warm = format!("w{conc}");
                register(&store, &warm, per_round / 5).await;
                round(&service, &csr, &warm, per_round / 5, conc).await;
                let mut rates = Vec::new();
                for r in 0..rounds {
                    let prefix = format!("c{conc}r{r}");
                    register(&store, &prefix, per_round).await;
                    rates.push(round(&service, &csr, &prefix, per_round, conc).await);
                }
                let (median, min, max) = stats(rates);
                println!(
                    "  {backend:<8} concurrency {conc:>4}: median {median:>7.0}/s  (min {min:.0}, max {max:.0})"
                );
            }
            // Stages alone, same concurrency as the last line: where the time goes.
            let conc = *concurrency.last().unwrap();
            let mut audit_rates = Vec::new();
            let mut registry_rates = Vec::new();
            for r in 0..rounds {
                audit_rates.push(audit_only(service.audit(), per_round, conc).await);
                let prefix = format!("reg{r}");
                register(&store, &prefix, per_round).await;
                registry_rates.push(registry_only(&store, &prefix, per_round, conc).await);
            }
            let (m, lo, hi) = stats(audit_rates);
            println!("  {backend:<8} stage: audit.record alone, {conc} tasks: median {m:.0}/s (min {lo:.0}, max {hi:.0})");
            let (m, lo, hi) = stats(registry_rates);
            println!("  {backend:<8} stage: registry group commit alone (insert + provision), {conc} tasks: median {m:.0}/s (min {lo:.0}, max {hi:.0})");
            store.close().await;
            if let Some(name) = pg {
                drop_pg(&name).await;
            }
        });
    }
    let mut py = Vec::new();
    for _ in 0..rounds {
        if let Some(rate) = python_anchor(dir, 2000) {
            py.push(rate);
        }
    }
    if !py.is_empty() {
        let (median, min, max) = stats(py);
        println!(
            "  anchor: Python cryptography issuance from the same CSR (in memory, not durable): median {median:.0}/s (min {min:.0}, max {max:.0})"
        );
    }
    let mut ossl = Vec::new();
    for _ in 0..rounds {
        ossl.push(openssl_anchor(dir, 100));
    }
    let (median, min, max) = stats(ossl);
    println!(
        "  anchor: `openssl x509 -req` loop (one process per certificate, file output): median {median:.0}/s (min {min:.0}, max {max:.0})"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
