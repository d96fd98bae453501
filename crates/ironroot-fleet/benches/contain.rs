//! `incident contain` on 10,000 registered devices (each with a certificate), SQLite and
//! PostgreSQL (`IRONROOT_TEST_PG`), against the anchor in the same run: the same revocations
//! one device per transaction with one audit entry each, as a script looping over
//! `ironroot device revoke` gets at best (no HTTP). Every figure includes the durable audit
//! entries. Prints median and range over the runs.
//!
//! Run: `IRONROOT_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p ironroot-fleet --bench contain`
//! (`CONTAIN_DEVICES`, `CONTAIN_RUNS`, `CONTAIN_ANCHOR_DEVICES` change the fleet size, the number
//! of runs and how many devices the per-device anchor revokes: default 1,000, compare devices/s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironroot_audit::{Audit, Event, EventKind};
use ironroot_fleet::incident::{ContainAction, ContainRequest, Targets};
use ironroot_fleet::{Fleet, Origin};
use ironroot_pki::Serial;
use ironroot_store::{
    CertificateKind, DeviceState, NewCertificate, NewDevice, RevocationReason, Store,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh registry with `n` active devices in group `g`, one certificate each.
async fn fleet(
    n: usize,
    pg: Option<&str>,
    dir: &std::path::Path,
) -> (
    Fleet,
    Store,
    Arc<Audit>,
    Option<ironroot_testkit::pg::Database>,
) {
    let (store, db) = match pg {
        Some(_) => {
            let db = ironroot_testkit::pg::Database::create("contain_bench").await;
            (Store::open(&db.url).await.unwrap(), Some(db))
        }
        None => (Store::open_data_dir(dir).await.unwrap(), None),
    };
    let mut tx = store.begin().await.unwrap();
    for i in 0..n {
        let id = format!("b-{i:06}");
        let mut new = NewDevice::new(&id);
        new.state = DeviceState::Provisioned;
        new.groups = vec!["g".into()];
        tx.add_device(&new).await.unwrap();
        tx.set_device_state(&id, DeviceState::Active).await.unwrap();
        tx.record_issued_certificate(&NewCertificate {
            serial: Serial::from_hex(&format!("{:016x}", i + 1)).unwrap(),
            der: format!("bench certificate {i}").into_bytes(),
            device_id: Some(id),
            kind: CertificateKind::Operational,
            issuer: "bench CA".into(),
            subject: "CN=bench".into(),
            not_before: 0,
            not_after: 4_000_000_000,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let audit = Arc::new(Audit::open_store(&store, dir).await.unwrap());
    (Fleet::new(store.clone(), audit.clone()), store, audit, db)
}

fn summary(label: &str, runs: &mut [Duration], n: usize) {
    runs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(runs[runs.len() / 2]);
    println!(
        "{label:<58} median {median:>9.1} ms  [{:.1} – {:.1}]  ({:.0} devices/s, {} runs)",
        ms(runs[0]),
        ms(runs[runs.len() - 1]),
        n as f64 / (median / 1000.0),
        runs.len()
    );
}

fn main() {
    let n = env_usize("CONTAIN_DEVICES", 10_000);
    let runs = env_usize("CONTAIN_RUNS", 5);
    let anchor = env_usize("CONTAIN_ANCHOR_DEVICES", 1_000).min(n);
    let pg = std::env::var("IRONROOT_TEST_PG").ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let origin = Origin::new("operator:bench", "cli");
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = pg.as_deref() {
        backends.push(("postgres", Some(url)));
    } else {
        eprintln!("IRONROOT_TEST_PG unset: PostgreSQL skipped");
    }
    println!("incident contain, {n} active devices with one certificate each, durable audit");
    for (name, url) in backends {
        for action in [ContainAction::Revoke, ContainAction::Quarantine] {
            let mut times = Vec::new();
            for _ in 0..runs {
                let dir = tempfile::tempdir().unwrap();
                let (fleet, _store, _audit, _db) = rt.block_on(fleet(n, url, dir.path()));
                let request = ContainRequest::new(Targets::Group("g".into()), action);
                let t = Instant::now();
                let done = rt.block_on(fleet.contain(&origin, &request)).unwrap();
                times.push(t.elapsed());
                assert_eq!(done.contained.len(), n);
            }
            summary(
                &format!("{name}: contain --group ({})", action.as_str()),
                &mut times,
                n,
            );
        }
        // Anchor: the same revocations, one transaction and one audit entry per device, over
        // the first `anchor` devices of the same fleet (compare devices/s).
        let mut times = Vec::new();
        for _ in 0..runs.min(3) {
            let dir = tempfile::tempdir().unwrap();
            let (_fleet, store, audit, _db) = rt.block_on(fleet(n, url, dir.path()));
            let t = Instant::now();
            rt.block_on(async {
                for i in 0..anchor {
                    let id = format!("b-{i:06}");
                    audit
                        .record(
                            Event::new(EventKind::DeviceStateChanged, "operator:bench")
                                .subject("device", id.clone()),
                        )
                        .await
                        .unwrap();
                    let mut tx = store.begin().await.unwrap();
                    tx.revoke_device_certificates(&id, RevocationReason::KeyCompromise)
                        .await
                        .unwrap();
                    tx.set_device_state(&id, DeviceState::Revoked)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            });
            times.push(t.elapsed());
        }
        summary(
            &format!("{name}: anchor, one transaction per device (revoke, {anchor})"),
            &mut times,
            anchor,
        );
    }
}
