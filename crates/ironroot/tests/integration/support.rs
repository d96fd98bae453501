//! What the device-side tests of the `ironroot` binary share: the binary with a clean
//! environment, free ports, and a running `ironroot up` that is stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
