//! A limit from the configuration file is enforced by the running broker: a connection rate
//! per source address of burst 2 lets two TCP connections through to TLS and closes the
//! following ones before the handshake; the default configuration admits them all.

use std::time::{Duration, Instant};

use ironroot_node::NodeConfig;

use crate::harness::{Db, TestNode, config_file, prepare};

/// Opens `n` TCP connections to the MQTT port one after the other; returns the broker's count
/// of connections it closed for the source's rate.
async fn rate_limited_after(t: &TestNode, n: usize) -> u64 {
    let addr = t.node().mqtt_addr();
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // The refusal is counted when the broker accepts and closes the socket.
    let start = Instant::now();
    loop {
        let limited = t.node().plane().broker().stats().connections_rate_limited;
        if limited > 0 || start.elapsed() > Duration::from_secs(2) {
            return limited;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_rate_from_the_file_is_enforced() {
    let (dir, defaults, pg) = prepare(Db::Sqlite).await;
    let file = config_file(
        dir.path(),
        &format!(
            "data_dir = {:?}\n[api]\naddr = \"127.0.0.1:0\"\n[mqtt]\naddr = \"127.0.0.1:0\"\n\
             [mqtt.limits]\nconnection_rate_per_ip = {{ per_second = 0.01, burst = 2.0 }}\n",
            dir.path()
        ),
    );
    let config = NodeConfig::load(&file).unwrap();
    assert_ne!(config, defaults);
    let t = TestNode::start_with(dir, config, pg).await;
    let limited = rate_limited_after(&t, 5).await;
    assert!(limited >= 1, "file limit not enforced: {limited}");
    assert!(
        limited <= 3,
        "the first two connections must pass: {limited}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_connection_rate_admits_the_same_connections() {
    let t = TestNode::start(Db::Sqlite).await;
    assert_eq!(rate_limited_after(&t, 5).await, 0);
    t.stop().await;
}
