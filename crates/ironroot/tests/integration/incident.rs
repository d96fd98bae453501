//! `ironroot incident contain` against a real `ironroot up`: a group of 10,000 registered
//! devices, 2,000 of them enrolled and connected over mutual-TLS MQTT, revoked in one command;
//! every live session ends, the registry and the broker agree, and `incident report` returns
//! a report whose every inclusion proof verifies with the log's key (checked again here).
//! Refusals (no selection, an empty group, a bad query) go through the same command.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironroot_audit::{NoteVerifier, ProofBundle};
use ironroot_device::core::Backoff;
use ironroot_device::{
    Agent, AgentConfig, AgentObserver, Bootstrap, EstClient, MqttTarget, TrustAnchor,
};
use ironroot_element::SoftwareElement;
use ironroot_sim::{Credentials, Operator};
use ironroot_testkit::run_ok;

use crate::support::{self, free_port, ironroot};

const REGISTERED: usize = 10_000;
const CONNECTED: usize = 2_000;

#[derive(Default)]
struct Connects(AtomicUsize);

impl AgentObserver for Connects {
    fn connected(&self, _device: &str, _took: Duration) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The broker's live connection count, from `/metrics`.
async fn live_connections(operator: &Operator) -> u64 {
    let r = operator
        .raw("GET", "/metrics", Credentials::Admin, "text/plain", b"")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&r.body);
    text.lines()
        .find_map(|l| l.strip_prefix("ironroot_mqtt_connections "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no ironroot_mqtt_connections in /metrics: {text}"))
}

/// Times (RFC 3339) of every `mqtt.kick` entry, in log order, paging through the audit API.
async fn kick_times(operator: &Operator) -> Vec<String> {
    let mut times = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            Some(a) => format!("/api/v1/audit/events?type=mqtt.kick&limit=1000&after={a}"),
            None => "/api/v1/audit/events?type=mqtt.kick&limit=1000".to_owned(),
        };
        let r = operator
            .raw("GET", &path, Credentials::Admin, "application/json", b"")
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let entries = v["entries"].as_array().cloned().unwrap_or_default();
        times.extend(
            entries
                .iter()
                .map(|e| e["time"].as_str().unwrap_or_default().to_owned()),
        );
        let next = v["next_after"].as_u64();
        if next.is_none() || next == after {
            break;
        }
        after = next;
    }
    times
}

fn up(dir: &Path, config: &Path, api: u16, mqtt: u16) -> support::Proc {
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

#[test]
fn contain_a_group_of_ten_thousand_with_two_thousand_connected_cuts_them_all() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let config = tmp.path().join("ironroot.toml");
    // The whole fleet connects from 127.0.0.1 (one NAT gateway).
    std::fs::write(
        &config,
        "[mqtt.limits]\nconnection_rate_per_ip = { per_second = 1000.0, burst = 1000.0 }\n\
         [api.limits]\nper_source_rate = 1000.0\nper_source_burst = 1000.0\n",
    )
    .unwrap();
    let (api, mqtt) = (free_port(), free_port());
    let _server = up(&dir, &config, api, mqtt);
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
    let operator = Operator::new(&url, &trust, token).unwrap();

    // Refusals first, through the same command: nothing matches, or nothing is named.
    let empty = ironroot(&dir, &["incident", "contain", "--group", "nobody-here"])
        .output()
        .unwrap();
    assert!(!empty.status.success());
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("no device matches"),
        "{empty:?}"
    );
    let unnamed = ironroot(&dir, &["incident", "contain"]).output().unwrap();
    assert!(!unnamed.status.success());
    let bad = ironroot(&dir, &["incident", "contain", "--query", "colour=red"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown key"),
        "{bad:?}"
    );

    let ids: Vec<String> = (0..REGISTERED).map(|i| format!("inc-dev-{i:05}")).collect();
    let claim = rt.block_on(async {
        operator.register(&ids, "line-x").await.unwrap();
        operator
            .group_claim("line-x", CONNECTED as u32, 3600)
            .await
            .unwrap()
    });
    let connects = Arc::new(Connects::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let est = EstClient::new(&url, trust.clone()).unwrap();
    let slots = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for id in ids.iter().take(CONNECTED) {
        let cfg = AgentConfig {
            device_id: id.clone(),
            est: est.clone(),
            trust: trust.clone(),
            mqtt: MqttTarget {
                host: "127.0.0.1".into(),
                port: mqtt,
            },
            bootstrap: Bootstrap::ClaimToken(claim.clone()),
            telemetry_interval: None,
            // Slow retries: once revoked, 2,000 agents retrying TLS every second would saturate
            // both cores of this machine and measure the retry storm, not the containment.
            backoff: Backoff::new(Duration::from_secs(20), Duration::from_secs(60)),
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
    while connects.0.load(Ordering::Relaxed) < CONNECTED {
        assert!(
            Instant::now() < deadline,
            "only {} connected",
            connects.0.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(rt.block_on(live_connections(&operator)), CONNECTED as u64);

    let started = Instant::now();
    let out = run_ok(&mut ironroot(
        &dir,
        &[
            "incident",
            "contain",
            "--group",
            "line-x",
            "--revoke",
            "--reason",
            "cloned identity",
            "--evidence",
            "alarm-7",
            "--json",
        ],
    ));
    let command = started.elapsed();
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        done["contained"].as_array().unwrap().len(),
        REGISTERED,
        "skipped: {}",
        done["skipped"]
    );
    assert!(done["skipped"].as_array().unwrap().is_empty());
    let incident = done["incident"].as_str().unwrap().to_owned();
    // Every live session ends (the agents keep retrying; their revoked certificates fail TLS).
    let cut_deadline = Instant::now() + Duration::from_secs(30);
    let mut live = u64::MAX;
    while live > 0 {
        live = rt.block_on(live_connections(&operator));
        assert!(
            Instant::now() < cut_deadline,
            "{live} sessions still live after containment"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let all_cut = started.elapsed();
    // When the broker cut each session, from its own audit entries (`mqtt.kick`).
    let kicks = rt.block_on(kick_times(&operator));
    assert!(kicks.len() >= CONNECTED, "{} kicks", kicks.len());
    eprintln!(
        "contain {REGISTERED} devices ({CONNECTED} connected): server {} ms, command {command:?}, \
         no live session {all_cut:?} after the command started (polled every 50 ms; the agents \
         retry TLS after up to 20 s); kicks span {} .. {}",
        done["elapsed_ms"],
        kicks.first().unwrap(),
        kicks.last().unwrap()
    );
    let shown = run_ok(&mut ironroot(&dir, &["device", "show", "inc-dev-00042"]));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("revoked"));

    let out = run_ok(&mut ironroot(
        &dir,
        &["incident", "report", &incident, "--json"],
    ));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "contained");
    assert_eq!(report["devices"].as_object().unwrap().len(), REGISTERED);
    assert_eq!(
        report["revoked_certificates"].as_array().unwrap().len(),
        CONNECTED
    );
    assert_eq!(report["evidence"][0], "alarm-7");
    let verifier = NoteVerifier::parse(report["log_key"].as_str().unwrap()).unwrap();
    let timeline = report["timeline"].as_array().unwrap();
    // opened + a device entry each + a certificate entry each + contained.
    assert_eq!(timeline.len(), 2 + REGISTERED + CONNECTED);
    for entry in timeline {
        let bundle = ProofBundle::parse(entry["proof"].as_str().unwrap()).unwrap();
        assert_eq!(
            bundle.verify(&verifier).unwrap().index,
            entry["index"].as_u64().unwrap()
        );
    }
    let text = run_ok(&mut ironroot(&dir, &["incident", "report", &incident]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("status: contained") && text.contains("every inclusion proof verified"),
        "{text}"
    );

    let _ = stop_tx.send(true);
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
}
