//! What the device-side tests of the `ironroot` binary share: the binary with a clean
//! environment, free ports, and a running `ironroot up` that is stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `ironroot ARGS` on data directory `data_dir`, with no inherited server, token or passphrase.
pub fn ironroot(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env_remove("IRONROOT_ADMIN_TOKEN")
        .env_remove("IRONROOT_CLAIM_TOKEN")
        .env_remove("IRONROOT_ROOT_PASSPHRASE")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env("IRONROOT_DATA_DIR", data_dir);
    cmd
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped with SIGTERM (then killed) when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// SIGTERM, up to 20 s for a clean exit, then SIGKILL.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `ironroot up EXTRA` on `dir` (stdout appended to `log`) and waits until it has
/// written its server URL and MQTT address.
pub fn up(dir: &Path, extra: &[&str], log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut args = vec!["up"];
    args.extend_from_slice(extra);
    let child = ironroot(dir, &args)
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    let start = Instant::now();
    while !(dir.join("server.url").exists() && dir.join(ironroot_node::MQTT_ADDR_FILE).exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        assert!(
            p.0.try_wait().unwrap().is_none(),
            "ironroot up exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p
}

/// `ironroot up` on free ports with `extra` arguments; returns it and its data directory.
pub fn up_on_free_ports(tmp: &Path, extra: &[&str]) -> (Proc, PathBuf) {
    let dir = tmp.join("data");
    let mut args = vec!["--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    (up(&dir, &args, &tmp.join("up.log")), dir)
}

/// Spawns `cmd` (stdout discarded) with its stderr lines arriving on the channel, as the
/// agent tests read what `ironroot agent` says it did.
pub fn spawn_lines(cmd: &mut Command) -> (Proc, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (Proc(child), rx)
}

/// Waits for a line containing `needle`; returns every line seen until then.
pub fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no {needle:?} within {timeout:?}; saw {seen:#?}"),
        }
    }
}
