//! End-to-end provisioning load: devices enrolled per second over HTTPS, each with a new TLS
//! connection and its own fresh P-256 key, by a load generator in this process (same machine).
//!
//! Every device: key generation + CSR (client) → TCP + TLS 1.3 handshake → POST
//! /.well-known/est/simpleenroll with HTTP Basic (device id + a group claim token with a quota)
//! → server: rate limits, CSR check, token redemption (durable), identity service issue (audit
//! write-ahead + registry group commit, both durable) → PKCS#7 response → client checks 200.
//!
//! Anchor in the same run: the same number of new HTTPS connections doing `GET /healthz`
//! (handshake + one request, nothing durable), so the figure reads as "x% of a bare HTTPS
//! connection rate".
//!
//! ```text
//! IRONROOT_BENCH_N=100000 IRONROOT_BENCH_DB=sqlite cargo bench -p ironroot-server --bench provision
//! IRONROOT_BENCH_N=20000 IRONROOT_BENCH_DB=postgres IRONROOT_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p ironroot-server --bench provision
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironroot_pki::{CaDirectory, DeviceId, HierarchyPolicy, InitOptions, KdfParams, Passphrase};
use ironroot_server::client::Client;
use ironroot_server::{Limits, Server, ServerConfig};
use ironroot_store::sqlx::{Connection as _, Executor as _, PgConnection};
use ironroot_store::{NewDevice, sqlx};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn csr_for(id: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, id);
    let csr = params.serialize_request(&key).expect("csr");
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(csr.der())
}

struct Round {
    rate: f64,
    p50: Duration,
    p99: Duration,
    failures: usize,
}

async fn drive<F, Fut>(n: usize, concurrency: usize, op: F) -> Round
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, next, failures) = (op.clone(), next.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                if !op(i).await {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    lat.sort();
    Round {
        rate: n as f64 / elapsed.as_secs_f64(),
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
        failures: failures.load(Ordering::Relaxed),
    }
}

fn summary(name: &str, rounds: &[Round]) {
    let mut rates: Vec<f64> = rounds.iter().map(|r| r.rate).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "{name}: median {median:.0}/s (min {:.0}, max {:.0}) over {} rounds; p50 {:?} p99 {:?} (last round); failures {}",
        rates[0],
        rates[rates.len() - 1],
        rates.len(),
        rounds.last().unwrap().p50,
        rounds.last().unwrap().p99,
        rounds.iter().map(|r| r.failures).sum::<usize>()
    );
}

fn main() {
    let n = env_usize("IRONROOT_BENCH_N", 3000);
    let rounds = env_usize("IRONROOT_BENCH_ROUNDS", 3).max(1);
    let concurrency = env_usize("IRONROOT_BENCH_CONCURRENCY", 64);
    let db = std::env::var("IRONROOT_BENCH_DB").unwrap_or_else(|_| "sqlite".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        CaDirectory::new(dir.path())
            .init(
                InitOptions {
                    root_passphrase: Passphrase::random().unwrap(),
                    online: None,
                    kdf: KdfParams::MINIMUM,
                    hierarchy: HierarchyPolicy::default(),
                    operator: DeviceId::parse("admin").unwrap(),
                },
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let mut config = ServerConfig::new(dir.path());
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.limits = Limits::danger_unthrottled();
        config.limits.per_device_per_minute = 1e9;
        let mut pg = None;
        if db == "postgres" {
            let admin = std::env::var("IRONROOT_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("ironroot_bench_{}", std::process::id());
            let mut c = PgConnection::connect(&admin).await.expect("PostgreSQL reachable");
            c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            let base = &admin[..admin.rfind('/').unwrap()];
            config.database_url = Some(format!("{base}/{name}"));
            pg = Some((admin, name));
        }
        let server = Server::start(config).await.expect("server");
        let total = n * rounds;
        // Register every device in large transactions (setup, not measured).
        let t = Instant::now();
        for chunk in (0..total).collect::<Vec<_>>().chunks(2000) {
            let mut tx = server.store().begin().await.unwrap();
            for i in chunk {
                let mut d = NewDevice::new(format!("bench-{i:07}"));
                d.groups = vec!["bench".into()];
                tx.add_device(&d).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        eprintln!("registered {total} devices in {:?}", t.elapsed());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let token = ironroot_server::claims::mint(
            server.store(),
            &ironroot_server::claims::ClaimScope::Group {
                name: "bench".into(),
                quota: total as u32,
            },
            "operator:bench",
            now,
            now + 3600,
        )
        .await
        .unwrap();
        let chain = std::fs::read(dir.path().join("pki").join("chain.pem")).unwrap();
        let client = Client::new(server.url(), &chain, None).unwrap();
        let token = Arc::new(token.token.to_string());

        let mut anchor = Vec::new();
        let mut enroll = Vec::new();
        for r in 0..rounds {
            let c = client.clone();
            anchor.push(
                drive(n, concurrency, move |_| {
                    let c = c.clone();
                    async move {
                        matches!(c.request("GET", "/healthz", &[], b"").await, Ok(r) if r.status == 200)
                    }
                })
                .await,
            );
            let (c, token) = (client.clone(), token.clone());
            let base = r * n;
            enroll.push(
                drive(n, concurrency, move |i| {
                    let (c, token) = (c.clone(), token.clone());
                    async move {
                        let id = format!("bench-{:07}", base + i);
                        let body = csr_for(&id);
                        use base64::Engine as _;
                        let auth = format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{token}"))
                        );
                        match c
                            .request(
                                "POST",
                                "/.well-known/est/simpleenroll",
                                &[("Content-Type", "application/pkcs10"), ("Authorization", &auth)],
                                body.as_bytes(),
                            )
                            .await
                        {
                            Ok(r) if r.status == 200 => true,
                            Ok(r) => {
                                eprintln!("{id}: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body));
                                false
                            }
                            Err(e) => {
                                eprintln!("{id}: {e}");
                                false
                            }
                        }
                    }
                })
                .await,
            );
            eprintln!(
                "round {r}: enroll {:.0}/s, anchor {:.0}/s",
                enroll.last().unwrap().rate,
                anchor.last().unwrap().rate
            );
        }
        println!("provisioning benchmark: {db}, {n} devices x {rounds} rounds, concurrency {concurrency}");
        summary("anchor: new HTTPS connection + GET /healthz", &anchor);
        summary("enroll: key + CSR + new TLS + EST simpleenroll (durable)", &enroll);
        let issued = server
            .store()
            .list_devices(&ironroot_store::DeviceFilter {
                state: Some(ironroot_store::DeviceState::Provisioned),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(!issued.is_empty(), "no device provisioned");
        server.shutdown().await;
        if let Some((admin, name)) = pg {
            let mut c = PgConnection::connect(&admin).await.unwrap();
            let _ = c
                .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .await;
        }
    });
}
