//! No reconnect storm: 2,000 agents connected to a real `ironroot up` lose the broker when it
//! restarts and come back on their own, spread out by exponential backoff with full jitter
//! rather than in one wave. The broker's per-address connection rate is configured for a fleet
//! behind one address (all devices here connect from 127.0.0.1).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironroot_device::core::Backoff;
use ironroot_device::{
    Agent, AgentConfig, AgentObserver, Bootstrap, EstClient, MqttTarget, TrustAnchor,
};
use ironroot_element::SoftwareElement;

use crate::support::{self, Proc, free_port};
use std::sync::Mutex;

const DEVICES: usize = 2000;

fn start(dir: &Path, config: &Path, api: u16, mqtt: u16) -> Proc {
    let (api, mqtt) = (format!("127.0.0.1:{api}"), format!("127.0.0.1:{mqtt}"));
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--api-addr",
        &api,
        "--mqtt-addr",
        &mqtt,
    ];
    support::up(dir, &args, &dir.with_extension("log"))
}

/// Counts live sessions and remembers when each successful (re)connect attempt started.
#[derive(Default)]
struct Connects {
    total: AtomicUsize,
    at: Mutex<Vec<Instant>>,
}

impl AgentObserver for Connects {
    fn connected(&self, _device: &str, took: Duration) {
        self.total.fetch_add(1, Ordering::Relaxed);
        // When the successful attempt started: what backoff spreads.
        self.at.lock().unwrap().push(Instant::now() - took);
    }
}

#[test]
fn two_thousand_devices_come_back_after_a_broker_restart_without_a_storm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let config = tmp.path().join("ironroot.toml");
    // One address for the whole fleet (a NAT gateway): allow it 1,000 new connections/s.
    std::fs::write(
        &config,
        "[mqtt.limits]\nconnection_rate_per_ip = { per_second = 1000.0, burst = 1000.0 }\n\
         [api.limits]\nper_source_rate = 1000.0\nper_source_burst = 1000.0\n",
    )
    .unwrap();
    let (api, mqtt) = (free_port(), free_port());
    let mut server = start(&dir, &config, api, mqtt);
    let url = format!("https://127.0.0.1:{api}");
    let trust = TrustAnchor::from_pem(&std::fs::read(dir.join("pki/chain.pem")).unwrap()).unwrap();
    let token = zeroize::Zeroizing::new(
        std::fs::read_to_string(dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let connects = Arc::new(Connects::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    // Enroll and connect the fleet.
    let ids: Vec<String> = (0..DEVICES).map(|i| format!("storm-{i:05}")).collect();
    let operator = ironroot_sim::Operator::new(&url, &trust, token).unwrap();
    let claim = rt.block_on(async {
        operator.register(&ids, "storm").await.unwrap();
        operator
            .group_claim("storm", DEVICES as u32, 3600)
            .await
            .unwrap()
    });
    let est = EstClient::new(&url, trust.clone()).unwrap();
    let slots = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for id in ids {
        let cfg = AgentConfig {
            device_id: id,
            est: est.clone(),
            trust: trust.clone(),
            mqtt: MqttTarget {
                host: "127.0.0.1".into(),
                port: mqtt,
            },
            bootstrap: Bootstrap::ClaimToken(claim.clone()),
            telemetry_interval: None,
            backoff: Backoff::default(),
            clock_skew: 0,
        };
        let (connects, slots, mut stop) = (connects.clone(), slots.clone(), stop_rx.clone());
        tasks.push(rt.spawn(async move {
            let element = Arc::new(SoftwareElement::ephemeral().unwrap());
            let mut agent = Agent::new(cfg, element, connects);
            {
                let _slot = slots.acquire().await;
                agent.run_until_connected(Duration::from_secs(120)).await;
            }
            agent
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while connects.total.load(Ordering::Relaxed) < DEVICES {
        assert!(
            Instant::now() < deadline,
            "only {} connected",
            connects.total.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Restart the server: every session ends at once.
    server.stop();
    let restarted = Instant::now();
    let _server = start(&dir, &config, api, mqtt);
    let back_within = Duration::from_secs(90);
    while connects.total.load(Ordering::Relaxed) < 2 * DEVICES {
        assert!(
            restarted.elapsed() < back_within,
            "only {} of {DEVICES} back after {back_within:?}",
            connects.total.load(Ordering::Relaxed) - DEVICES
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let all_back = restarted.elapsed();
    // Spread, not a wave: no single 100 ms window holds more than a quarter of the fleet.
    let times: Vec<Instant> = connects.at.lock().unwrap()[DEVICES..].to_vec();
    let first = *times.iter().min().unwrap();
    let mut buckets = std::collections::BTreeMap::<u128, usize>::new();
    for t in &times {
        *buckets
            .entry(t.duration_since(first).as_millis() / 100)
            .or_default() += 1;
    }
    let peak = buckets.values().copied().max().unwrap();
    eprintln!(
        "all {DEVICES} back {all_back:?} after the restart; busiest 100 ms: {peak} reconnects"
    );
    assert!(
        peak <= DEVICES / 4,
        "reconnect wave: {peak} in one 100 ms window: {buckets:?}"
    );
    let _ = stop_tx.send(true);
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
}
