//! One driver for the real MQTT clients the integration suites judge the broker with:
//! `mosquitto_pub` / `mosquitto_sub` command lines, a background `mosquitto_sub` whose output
//! is collected while it runs, and the scripted paho-mqtt client (`paho_driver.py`, next to
//! this file) whose protocol events arrive as JSON lines.
//!
//! Every client connects to `127.0.0.1:<port>` over mutual TLS with a [`ClientTls`].

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The files a client needs for mutual TLS: the CA to trust, its certificate and key.
#[derive(Debug, Clone, Copy)]
pub struct ClientTls<'a> {
    /// PEM file of the CA that issued the broker's certificate.
    pub ca_file: &'a Path,
    /// PEM file of the client's certificate (chain).
    pub cert: &'a Path,
    /// PEM file of the client's private key.
    pub key: &'a Path,
}

/// `mosquitto_pub` or `mosquitto_sub` (`tool`) connecting to `127.0.0.1:port` as `client_id`,
/// MQTT 5 when `v5`, else 3.1.1. Callers add the topic and message arguments.
pub fn mosquitto(tool: &str, port: u16, tls: ClientTls<'_>, client_id: &str, v5: bool) -> Command {
    let mut cmd = Command::new(crate::tool(tool));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .arg("--cafile")
        .arg(tls.ca_file)
        .arg("--cert")
        .arg(tls.cert)
        .arg("--key")
        .arg(tls.key)
        .args([
            "-i",
            client_id,
            "-V",
            if v5 { "mqttv5" } else { "mqttv311" },
        ]);
    cmd
}

/// `cmd` run under `stdbuf -oL`: a client's stdout (mosquitto's `-d` protocol trace) arrives
/// line by line while it runs instead of in one block when it exits, so a test can wait for
/// a line such as `received SUBACK`.
pub fn line_buffered(cmd: &Command) -> Command {
    let mut wrapped = Command::new(crate::tool("stdbuf"));
    wrapped
        .arg("-oL")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    wrapped
}

/// Reads `stream` line by line on a thread, sending each line (mapped by `f`) to `tx`.
fn forward<R, T, F>(stream: R, tx: mpsc::Sender<T>, f: F)
where
    R: std::io::Read + Send + 'static,
    T: Send + 'static,
    F: Fn(String) -> Option<T> + Send + 'static,
{
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some(item) = f(line)
                && tx.send(item).is_err()
            {
                break;
            }
        }
    });
}

/// A running client (typically `mosquitto_sub`), collecting its stdout and stderr lines.
/// Killed when dropped.
#[derive(Debug)]
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    /// Starts `cmd` (a `Command` or `&mut Command`) with piped output.
    pub fn spawn(mut cmd: impl std::borrow::BorrowMut<Command>) -> Background {
        let cmd = cmd.borrow_mut();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, rx) = mpsc::channel();
        forward(child.stdout.take().unwrap(), tx.clone(), Some);
        forward(child.stderr.take().unwrap(), tx, Some);
        Background {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (≤ `timeout`) for an output line containing `needle`; returns whether it came.
    /// Lines read meanwhile are kept for [`Background::finish`].
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> bool {
        if self.seen.iter().any(|l| l.contains(needle)) {
            return true;
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => break,
            }
        }
        false
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit (killing it after `timeout`) and returns its exit code
    /// and every line it printed.
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

/// The paho driver script, written once per test process to the temp directory.
fn driver_path() -> PathBuf {
    static SCRIPT: &str = include_str!("paho_driver.py");
    let path = std::env::temp_dir().join(format!("ironroot-paho-{}.py", std::process::id()));
    if !path.exists() {
        // Written under a per-thread name and renamed, so parallel tests never run a torn file.
        let tmp = path.with_extension(
            format!("{:?}.tmp", std::thread::current().id()).replace(['(', ')'], ""),
        );
        std::fs::write(&tmp, SCRIPT).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// A paho driver spec: client `id` on `127.0.0.1:port`, MQTT `protocol` 4 (3.1.1) or 5, the
/// `steps` to run (see `paho_driver.py` for the step and event vocabulary).
pub fn paho_spec(port: u16, tls: ClientTls<'_>, id: &str, protocol: u8, steps: Value) -> Value {
    json!({
        "port": port,
        "ca": tls.ca_file,
        "cert": tls.cert,
        "key": tls.key,
        "client_id": id,
        "protocol": protocol,
        "steps": steps,
    })
}

/// A running paho driver; its JSON event lines arrive as they happen. Killed when dropped.
#[derive(Debug)]
pub struct Paho {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
    /// Every event line read so far, in order.
    pub seen: Vec<Value>,
    arrived: Vec<Instant>,
    stderr: Arc<Mutex<String>>,
}

impl Paho {
    /// Starts the driver with `spec`.
    pub fn spawn(spec: &Value) -> Paho {
        let mut child = Command::new(crate::python())
            .arg(driver_path())
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python starts");
        let (tx, rx) = mpsc::channel();
        forward(child.stdout.take().unwrap(), tx, |line| {
            serde_json::from_str::<Value>(&line)
                .ok()
                .map(|v| (Instant::now(), v))
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (etx, erx) = mpsc::channel::<String>();
        forward(child.stderr.take().unwrap(), etx, Some);
        let s2 = stderr.clone();
        std::thread::spawn(move || {
            for line in erx {
                // Passed on, so a failing test shows what the driver said.
                eprintln!("paho: {line}");
                let mut s = s2.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Paho {
            child,
            lines: rx,
            seen: Vec::new(),
            arrived: Vec::new(),
            stderr,
        }
    }

    /// Runs a spec to completion and returns every event line.
    pub fn run(spec: &Value) -> Vec<Value> {
        let mut p = Paho::spawn(spec);
        p.wait(|v| v["ev"] == "done", Duration::from_secs(30));
        p.finish()
    }

    /// Waits for an event line matching `pred` (already seen or arriving within `timeout`);
    /// returns it with the time it arrived.
    pub fn wait_timed(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<(Instant, Value)> {
        if let Some(i) = self.seen.iter().position(&pred) {
            return Some((self.arrived[i], self.seen[i].clone()));
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok((at, v)) => {
                    let hit = pred(&v);
                    self.seen.push(v.clone());
                    self.arrived.push(at);
                    if hit {
                        return Some((at, v));
                    }
                }
                Err(_) => break,
            }
        }
        None
    }

    /// Waits for an event line matching `pred` (already seen or arriving within `timeout`).
    pub fn wait(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        self.wait_timed(pred, timeout).map(|(_, v)| v)
    }

    /// Waits for an event of kind `ev`.
    pub fn wait_ev(&mut self, ev: &str, timeout: Duration) -> Option<Value> {
        self.wait(|v| v["ev"] == ev, timeout)
    }

    /// What the driver wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (≤ 30 s) for the driver to exit and returns every event line; panics unless the
    /// driver reported `done`.
    pub fn finish(mut self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(20));
        while let Ok((at, v)) = self.lines.try_recv() {
            self.seen.push(v);
            self.arrived.push(at);
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

/// Payloads of the received messages in a driver log.
pub fn payloads(log: &[Value]) -> Vec<String> {
    evs(log, "message")
        .iter()
        .map(|m| m["payload"].as_str().unwrap().to_string())
        .collect()
}
