//! Runs the fleet: register, claim, then every device's agent in its own task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironroot_device::core::Backoff;
use ironroot_device::{
    Agent, AgentConfig, AgentObserver, BootReport, Bootstrap, DeviceError, EstClient, MqttTarget,
    TrustAnchor,
};
use ironroot_element::SoftwareElement;
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};
use zeroize::Zeroizing;

use crate::board::{FactoryBoot, FleetFirmware};
use crate::report::quantile_ms;
use crate::{Operator, Report, SimError};

/// Most distinct failure messages kept for the report.
const FAILURE_SAMPLES: usize = 8;

/// What the fleet does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scenario {
    /// Enroll, connect, stream telemetry.
    Baseline,
    /// The baseline, then every attack of [`crate::attacks`]; each must be refused and audited.
    Attacks,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// What the devices do.
    pub scenario: Scenario,
    /// The server's API/EST URL (`https://host:port`).
    pub server: String,
    /// The broker.
    pub mqtt: MqttTarget,
    /// The CA chain the devices trust (PEM).
    pub ca_chain_pem: Vec<u8>,
    /// The operator token (registers the devices, mints the claim).
    pub admin_token: Zeroizing<String>,
    /// How many devices.
    pub devices: usize,
    /// Device ids are `<prefix>-<n>`; also the group they are registered in.
    pub prefix: String,
    /// Telemetry messages each device sends once connected.
    pub messages: u32,
    /// Pause between one device's messages.
    pub interval: Duration,
    /// Devices enrolling (EST) at the same time.
    pub enroll_concurrency: usize,
    /// How long a device may take from power-on to connected before it counts as failed.
    pub connect_timeout: Duration,
    /// How long the whole fleet stays connected after the last device is done (to measure a
    /// standing fleet: memory, idle load); zero to end at once.
    pub hold: Duration,
    /// Whether every device powers on through secure boot (ironroot-boot over simulated flash
    /// and fuses) and reports the decision before its telemetry.
    pub secure_boot: bool,
}

/// Progress callbacks (a progress bar in the CLI).
pub trait Progress: Send + Sync {
    /// `done` of `total` devices have finished (connected and sent their telemetry, or failed).
    fn devices_done(&self, done: usize, total: usize);
    /// A phase started ("registering", "running", ...).
    fn phase(&self, name: &str);
}

#[derive(Default)]
struct Tally {
    provisioned: AtomicUsize,
    connected: AtomicUsize,
    messages: AtomicU64,
    failures: AtomicU64,
    publish_us: Mutex<Vec<u64>>,
    connect_us: Mutex<Vec<u64>>,
    samples: Mutex<Vec<String>>,
    booted: AtomicUsize,
}

impl AgentObserver for Tally {
    fn enrolled(&self, _device: &str, renewal: bool, _took: Duration) {
        if !renewal {
            self.provisioned.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn published(&self, _device: &str, latency: Duration, accepted: bool) {
        if accepted {
            self.messages.fetch_add(1, Ordering::Relaxed);
            self.publish_us.lock().push(latency.as_micros() as u64);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            self.sample("publish refused by the broker".into());
        }
    }

    fn failed(&self, _device: &str, step: &'static str, error: &DeviceError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.sample(format!("{step}: {error}"));
    }

    fn boot_reported(&self, _device: &str, report: &BootReport) {
        if !report.trial {
            self.booted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Tally {
    fn sample(&self, text: String) {
        let mut s = self.samples.lock();
        if s.len() < FAILURE_SAMPLES && !s.contains(&text) {
            s.push(text);
        }
    }
}

/// Runs the simulation and returns its report. Errors only when the fleet cannot be set up
/// (unreachable server, refused operator token); device failures are counted in the report.
pub async fn run(cfg: SimConfig, progress: Arc<dyn Progress>) -> Result<Report, SimError> {
    if cfg.devices == 0 {
        return Err(SimError::Config("--devices must be at least 1".into()));
    }
    let quota = u32::try_from(cfg.devices)
        .map_err(|_| SimError::Config("too many devices for one claim".into()))?;
    let trust = TrustAnchor::from_pem(&cfg.ca_chain_pem)?;
    let operator = Operator::new(&cfg.server, &trust, cfg.admin_token.clone())?;
    let ids: Vec<String> = (0..cfg.devices)
        .map(|i| format!("{}-{i:05}", cfg.prefix))
        .collect();

    // The fleet's firmware: signed bootloader and application, factory flash and fuses.
    let firmware = if cfg.secure_boot || cfg.scenario == Scenario::Attacks {
        Some(FleetFirmware::generate()?)
    } else {
        None
    };
    progress.phase("registering devices");
    operator.register(&ids, &cfg.prefix).await?;
    let token = operator.group_claim(&cfg.prefix, quota, 3600).await?;

    progress.phase("running devices");
    let est = EstClient::new(&cfg.server, trust.clone())?;
    let tally = Arc::new(Tally::default());
    let enroll_slots = Arc::new(Semaphore::new(cfg.enroll_concurrency.max(1)));
    let done = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.devices);
    for id in ids {
        let agent_cfg = AgentConfig {
            device_id: id,
            est: est.clone(),
            trust: trust.clone(),
            mqtt: cfg.mqtt.clone(),
            bootstrap: Bootstrap::ClaimToken(token.clone()),
            telemetry_interval: None,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            clock_skew: 0,
        };
        let (tally, slots, done, progress) = (
            tally.clone(),
            enroll_slots.clone(),
            done.clone(),
            progress.clone(),
        );
        let mut stop = stop_rx.clone();
        let (messages, interval, timeout, total) =
            (cfg.messages, cfg.interval, cfg.connect_timeout, cfg.devices);
        let board = firmware.clone().filter(|_| cfg.secure_boot);
        tasks.push(tokio::spawn(async move {
            let powered_on = Instant::now();
            // Power-on: boot ROM and bootloader verify the chain before the agent runs.
            let boot = match board.map(|fw| fw.factory_boot()).transpose() {
                Ok(b) => b,
                Err(e) => {
                    tally.sample(format!("secure boot: {e}"));
                    tally.failures.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            let element = match SoftwareElement::ephemeral() {
                Ok(e) => Arc::new(e),
                Err(e) => {
                    tally.failed("", "element", &DeviceError::Element(e));
                    return;
                }
            };
            let mut agent = Agent::new(agent_cfg, element, tally.clone());
            if let Some(report) = boot {
                agent = agent.with_firmware(Box::new(FactoryBoot(report)));
            }
            let connected = {
                let _slot = slots.acquire().await;
                agent.run_until_connected(timeout).await
            };
            if connected {
                tally.connected.fetch_add(1, Ordering::Relaxed);
                tally
                    .connect_us
                    .lock()
                    .push(powered_on.elapsed().as_micros() as u64);
                for n in 0..messages {
                    if n > 0 {
                        tokio::time::sleep(interval).await;
                    }
                    agent.publish_telemetry().await;
                }
            }
            let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress.devices_done(finished, total);
            // Stay connected until the whole fleet is done: "connected" means at the same time.
            let _ = stop.wait_for(|s| *s).await;
            agent.disconnect().await;
        }));
        // Spread power-on a little so the first burst does not all land in one millisecond.
        tokio::task::yield_now().await;
    }
    while done.load(Ordering::Relaxed) < cfg.devices {
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    if !cfg.hold.is_zero() {
        progress.phase("holding the fleet connected");
        tokio::time::sleep(cfg.hold).await;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let attacks = if cfg.scenario == Scenario::Attacks {
        progress.phase("running attacks");
        let arena = crate::attacks::Arena {
            operator: &operator,
            est: &est,
            trust: &trust,
            mqtt: &cfg.mqtt,
            prefix: &cfg.prefix,
            firmware: firmware.as_ref(),
        };
        crate::attacks::run_all(&arena).await
    } else {
        Vec::new()
    };

    let mut publish = std::mem::take(&mut *tally.publish_us.lock());
    publish.sort_unstable();
    let mut connect = std::mem::take(&mut *tally.connect_us.lock());
    connect.sort_unstable();
    let connected = tally.connected.load(Ordering::Relaxed);
    Ok(Report {
        devices: cfg.devices,
        provisioned: tally.provisioned.load(Ordering::Relaxed),
        connected,
        messages: tally.messages.load(Ordering::Relaxed),
        failures: tally.failures.load(Ordering::Relaxed),
        p50_ms: quantile_ms(&publish, 0.5),
        p99_ms: quantile_ms(&publish, 0.99),
        connect_p50_ms: quantile_ms(&connect, 0.5),
        connect_p99_ms: quantile_ms(&connect, 0.99),
        devices_per_second: connected as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        booted: tally.booted.load(Ordering::Relaxed),
        firmware_version: if cfg.secure_boot {
            crate::board::factory_version()
        } else {
            String::new()
        },
        attacks,
        failure_samples: std::mem::take(&mut *tally.samples.lock()),
    })
}
