//! Test fixtures: a broker on an ephemeral port with a test PKI and an event log, and drivers for
//! the real clients (mosquitto_pub / mosquitto_sub, scripted paho-mqtt).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironroot_broker::{
    BrokerBuilder, BrokerConfig, BrokerEvent, BrokerHandle, EventRecord, IronrootPolicies, Limits,
    PolicySnapshot, event_channel,
};
use ironroot_policy::{AttachedPolicy, Attachment, PolicyDocument, PolicyName};
use ironroot_testkit::mqtt::ClientTls;
use parking_lot::{Condvar, Mutex};
use serde_json::Value;

use crate::pki::{ClientFiles, TestPki};

/// A policy version for tests.
pub fn policy(name: &str, attachment: Attachment, json: &str) -> AttachedPolicy {
    AttachedPolicy {
        name: PolicyName::new(name).unwrap(),
        version: 1,
        document: Arc::new(PolicyDocument::parse(json).unwrap_or_else(|e| panic!("{name}: {e}"))),
        attachment,
    }
}

/// Devices may also publish (and retain) their own status topic: wills and retained tests.
pub fn device_status_policy() -> AttachedPolicy {
    policy(
        "device-status",
        Attachment::Device,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Publish","iot:RetainPublish"],
            "Resource":"topic/devices/${iot:Connection.Thing.ThingName}/status"}]}"#,
    )
}

/// The backend service: reads telemetry and status of every device, sends commands.
pub fn backend_policy(telemetry_filter: bool, receive: &[&str]) -> AttachedPolicy {
    let mut filters = vec!["\"topicfilter/devices/+/status\"".to_string()];
    if telemetry_filter {
        filters.push("\"topicfilter/devices/+/telemetry\"".into());
    }
    let receive: Vec<String> = receive.iter().map(|t| format!("\"topic/{t}\"")).collect();
    policy(
        "backend",
        Attachment::Device,
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":"iot:Subscribe","Resource":[{}]}},
            {{"Effect":"Allow","Action":"iot:Receive","Resource":[{}]}},
            {{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/*/commands"}}]}}"#,
            filters.join(","),
            receive.join(",")
        ),
    )
}

/// The snapshot most tests run with: the built-in default device policy and the status
/// policy for every device, the backend policy for `backend`.
pub fn standard_snapshot() -> PolicySnapshot {
    let mut snap = PolicySnapshot::with_default_device_policy();
    snap.defaults.push(device_status_policy());
    snap.devices.insert(
        "backend".into(),
        vec![backend_policy(
            true,
            &["devices/*/telemetry", "devices/*/status"],
        )],
    );
    snap
}

pub struct TestBroker {
    pub handle: BrokerHandle,
    pub pki: TestPki,
    pub port: u16,
    pub policies: Arc<IronrootPolicies>,
    log: Arc<(Mutex<Vec<EventRecord>>, Condvar)>,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        Self::start_with(Limits::default())
    }

    pub fn start_with(limits: Limits) -> TestBroker {
        Self::start_full(limits, standard_snapshot())
    }

    pub fn start_full(limits: Limits, snapshot: PolicySnapshot) -> TestBroker {
        let policies = Arc::new(IronrootPolicies::new(snapshot));
        let pki = TestPki::new("broker");
        let (sink, mut rx) = event_channel(100_000);
        let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap());
        config.workers = 2;
        config.limits = limits;
        let handle = BrokerBuilder::new(config)
            .tls_parts(pki.tls_parts())
            .policy(policies.clone())
            .events(Arc::new(sink))
            .start()
            .expect("broker starts");
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let l2 = log.clone();
        std::thread::spawn(move || {
            while let Some(ev) = rx.blocking_recv() {
                l2.0.lock().push(ev);
                l2.1.notify_all();
            }
        });
        let port = handle.local_addr().unwrap().port();
        TestBroker {
            handle,
            pki,
            port,
            policies,
            log,
        }
    }

    pub fn events(&self) -> Vec<BrokerEvent> {
        self.log.0.lock().iter().map(|r| r.event.clone()).collect()
    }

    /// Waits for an event matching `pred` (already seen or arriving within `timeout`).
    pub fn wait_event(
        &self,
        timeout: Duration,
        pred: impl Fn(&BrokerEvent) -> bool,
    ) -> Option<BrokerEvent> {
        let deadline = Instant::now() + timeout;
        let mut log = self.log.0.lock();
        loop {
            if let Some(r) = log.iter().find(|r| pred(&r.event)) {
                return Some(r.event.clone());
            }
            if self.log.1.wait_until(&mut log, deadline).timed_out() {
                return log.iter().find(|r| pred(&r.event)).map(|r| r.event.clone());
            }
        }
    }

    /// Waits until `device_id` is connected (or not).
    pub fn wait_connected(&self, device_id: &str, connected: bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.handle.is_connected(device_id) == connected {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Waits until the broker holds at least `n` subscriptions.
    pub fn wait_subscriptions(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.handle.stats().subscriptions >= n)
    }

    pub fn client(&self, id: &str) -> ClientFiles {
        self.pki.client(id)
    }
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------- the real clients (one driver in ironroot-testkit) ----------

pub use ironroot_testkit::mqtt::{Background, Paho, evs, payloads};

fn tls<'a>(ca: &'a Path, c: &'a ClientFiles) -> ClientTls<'a> {
    ClientTls {
        ca_file: ca,
        cert: &c.cert,
        key: &c.key,
    }
}

/// `mosquitto_pub`/`mosquitto_sub` with a device certificate.
pub fn mosquitto(
    tool: &str,
    b: &TestBroker,
    c: &ClientFiles,
    client_id: &str,
    v5: bool,
) -> Command {
    let ca = b.pki.ca_file();
    ironroot_testkit::mqtt::mosquitto(tool, b.port, tls(&ca, c), client_id, v5)
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut cmd: Command) -> Output {
    let out = ironroot_testkit::run(&mut cmd);
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Builds a paho driver spec for client `id` with certificate `c`.
pub fn paho_spec(b: &TestBroker, c: &ClientFiles, id: &str, protocol: u8, steps: Value) -> Value {
    let ca = b.pki.ca_file();
    ironroot_testkit::mqtt::paho_spec(b.port, tls(&ca, c), id, protocol, steps)
}
