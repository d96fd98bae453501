//! Revocation-to-disconnect and policy-change-to-enforced delays through the store's change
//! feed, on SQLite (polling) and PostgreSQL (LISTEN/NOTIFY). The change is committed through a
//! second, independent `Store` (as another server replica or the CLI would); the clock stops
//! when the broker no longer holds the session (revocation) or the plane has enforced the
//! change (policy). Real mutual-TLS sessions (mosquitto_sub) are cut.
//!
//! Run: IRONROOT_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres \
//!      cargo bench -p ironroot-control --bench feed_delay

use std::process::Stdio;
use std::time::{Duration, Instant};

use ironroot_store::{RevocationReason, Store};

#[allow(dead_code, unused_macros, unused_imports)]
#[path = "../tests/integration/harness.rs"]
mod harness;

use harness::{Db, Node, mosquitto};

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name:<48} n={:<3} p50={:>8.1?} p99={:>8.1?} min={:>8.1?} max={:>8.1?}",
        v.len(),
        pct(0.5),
        pct(0.99),
        v[0],
        v[v.len() - 1]
    );
}

async fn bench(db: Db) {
    let node = Node::start(db).await;
    let other = Store::open(&node.url).await.unwrap();

    let mut policy = Vec::new();
    for i in 0..50 {
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/bench/{i}"}}]}}"#
        );
        let start = Instant::now();
        other.put_policy("bench", &doc).await.unwrap();
        let target = other.change_cursor_now().await.unwrap();
        while node.plane().applied_cursor() < target {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        policy.push(start.elapsed());
    }
    summary(&format!("{db:?}: policy change -> enforced"), policy);

    let mut revoke = Vec::new();
    for i in 0..20 {
        let id = format!("bench-{i}");
        let d = node.device(&id).await;
        let mut sub = mosquitto("mosquitto_sub", &node, &d, &id, true);
        sub.args(["-t", &format!("devices/{id}/commands")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = sub.spawn().unwrap();
        let up = Instant::now();
        while !node.plane().broker().is_connected(&id) {
            assert!(
                up.elapsed() < Duration::from_secs(10),
                "{id} never connected"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let start = Instant::now();
        other
            .revoke_certificate(
                &ironroot_pki::Serial::from_hex(&d.serial).unwrap(),
                RevocationReason::KeyCompromise,
            )
            .await
            .unwrap();
        while node.plane().broker().is_connected(&id) {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        revoke.push(start.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    summary(&format!("{db:?}: revocation -> session cut"), revoke);
    other.close().await;
    node.stop().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        bench(Db::Sqlite).await;
        bench(Db::Postgres).await;
    });
}
