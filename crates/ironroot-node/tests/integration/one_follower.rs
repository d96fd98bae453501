//! One change-feed follower per node. On PostgreSQL every follower holds a LISTEN connection,
//! so PostgreSQL itself (psql on pg_stat_activity) counts them; the old `ironroot up` wiring
//! (identity service follower + MQTT plane follower) held two.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Db, TestNode};

/// Backends of database `name` whose last statement was a LISTEN (change-feed followers).
fn listeners(name: &str) -> usize {
    let out = ironroot_testkit::run_ok(
        Command::new(ironroot_testkit::tool("psql"))
            .arg(ironroot_testkit::pg::admin_url())
            .args(["-At", "-c"])
            .arg(format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' \
                 AND query ILIKE 'LISTEN%'"
            )),
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_one_change_feed_follower() {
    let t = TestNode::start(Db::Postgres).await;
    let name = t.pg_name.clone().unwrap();
    assert_eq!(t.node().followers(), 1);
    assert!(!t.node().server().follows_changes());
    // The plane's follower listens once subscribed; wait for it, then make sure no second
    // one shows up.
    let start = Instant::now();
    while listeners(&name) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no follower listens"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tokio::task::block_in_place(|| listeners(&name)), 1);
    t.stop().await;
}

/// The oracle counts what it should: a standalone server (its own follower) beside the node
/// makes two listeners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_count_sees_a_second_follower() {
    let t = TestNode::start(Db::Postgres).await;
    let name = t.pg_name.clone().unwrap();
    let mut config = ironroot_server::ServerConfig::new(t.dir.path());
    config.database_url = Some(t.url.clone());
    config.api_addr = "127.0.0.1:0".parse().unwrap();
    config.ca_passphrase = Some(zeroize::Zeroizing::new(
        crate::harness::PASS.as_bytes().to_vec(),
    ));
    let second = ironroot_server::Server::start(config).await.unwrap();
    assert!(second.follows_changes());
    let start = Instant::now();
    while tokio::task::block_in_place(|| listeners(&name)) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "second follower not seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.shutdown().await;
    t.stop().await;
}
