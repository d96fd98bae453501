//! Test fixtures: a broker on an ephemeral port with a test PKI and an event log, and drivers for
//! the real clients (mosquitto_pub / mosquitto_sub, scripted paho-mqtt).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ironroot_broker::{
    BrokerBuilder, BrokerConfig, BrokerEvent, BrokerHandle, EventRecord, IronrootPolicies, Limits,
    PolicySnapshot, event_channel,
};
use ironroot_policy::{AttachedPolicy, Attachment, PolicyDocument, PolicyName};
use parking_lot::{Condvar, Mutex};
use serde_json::{Value, json};

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

// ---------- mosquitto clients ----------

/// `mosquitto_pub`/`mosquitto_sub` with a device certificate.
pub fn mosquitto(
    tool: &str,
    b: &TestBroker,
    c: &ClientFiles,
    client_id: &str,
    v5: bool,
) -> Command {
    let mut cmd = Command::new(ironroot_testkit::tool(tool));
    cmd.args(["-h", "127.0.0.1", "-p", &b.port.to_string()])
        .arg("--cafile")
        .arg(b.pki.ca_file())
        .arg("--cert")
        .arg(&c.cert)
        .arg("--key")
        .arg(&c.key)
        .args([
            "-i",
            client_id,
            "-V",
            if v5 { "mqttv5" } else { "mqttv311" },
        ]);
    cmd
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

/// A running `mosquitto_sub`, collecting its output lines.
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    pub fn spawn(mut cmd: Command) -> Background {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("client starts");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Background {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for the process to exit (killing it after `timeout`) and returns all its lines.
    pub fn finish(mut self, timeout: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().ok().and_then(|s| s.code());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        (code, std::mem::take(&mut self.seen))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------- paho-mqtt ----------

fn driver_path() -> PathBuf {
    static SCRIPT: &str = include_str!("paho_driver.py");
    let path = std::env::temp_dir().join(format!("ironroot-broker-paho-{}.py", std::process::id()));
    if !path.exists() {
        let tmp = path.with_extension(
            format!("{:?}.tmp", std::thread::current().id()).replace(['(', ')'], ""),
        );
        std::fs::write(&tmp, SCRIPT).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// Builds a paho driver spec for client `id` with certificate `c`.
pub fn paho_spec(b: &TestBroker, c: &ClientFiles, id: &str, protocol: u8, steps: Value) -> Value {
    json!({
        "port": b.port,
        "ca": b.pki.ca_file(),
        "cert": c.cert,
        "key": c.key,
        "client_id": id,
        "protocol": protocol,
        "steps": steps,
    })
}

/// A running paho driver; its JSON event lines arrive as they happen.
pub struct Paho {
    child: Child,
    lines: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Paho {
    pub fn spawn(spec: &Value) -> Paho {
        let mut child = Command::new(ironroot_testkit::python())
            .arg(driver_path())
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python starts");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let s2 = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                s2.lock().push_str(&line);
                s2.lock().push('\n');
            }
        });
        Paho {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Runs a spec to completion.
    pub fn run(spec: &Value) -> Vec<Value> {
        let mut p = Paho::spawn(spec);
        p.wait(|v| v["ev"] == "done", Duration::from_secs(30));
        p.finish()
    }

    /// Waits for an event line matching `pred`.
    pub fn wait(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    let hit = pred(&v);
                    self.seen.push(v.clone());
                    if hit {
                        return Some(v);
                    }
                }
                Err(_) => break,
            }
        }
        None
    }

    pub fn wait_ev(&mut self, ev: &str, timeout: Duration) -> Option<Value> {
        self.wait(|v| v["ev"] == ev, timeout)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().clone()
    }

    /// Waits for the driver to exit and returns every event line.
    pub fn finish(mut self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(20));
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
        assert!(
            self.seen.iter().any(|v| v["ev"] == "done"),
            "paho driver did not finish: {:?}\nstderr:\n{}",
            self.seen,
            self.stderr()
        );
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Paho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events of kind `ev` in a driver log.
pub fn evs<'a>(log: &'a [Value], ev: &str) -> Vec<&'a Value> {
    log.iter().filter(|v| v["ev"] == ev).collect()
}

/// Payloads of received messages.
pub fn payloads(log: &[Value]) -> Vec<String> {
    evs(log, "message")
        .iter()
        .map(|m| m["payload"].as_str().unwrap().to_string())
        .collect()
}
