//! `ironroot up --config FILE` and `--print-config`: the file, then environment variables,
//! then flags; the printed configuration parses back to the effective one; unknown keys and
//! bad values are refused naming the key and the file; secrets are never printed.

use std::path::Path;
use std::process::{Command, Output};

use ironroot_node::NodeConfig;

fn up(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.arg("up")
        .args(args)
        .current_dir(dir)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_DATA_DIR")
        .env_remove("IRONROOT_API_ADDR")
        .env_remove("IRONROOT_MQTT_ADDR")
        .env_remove("IRONROOT_CONFIG")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env_remove("IRONROOT_CA_PASSPHRASE_FILE");
    cmd
}

fn printed(out: &Output, origin: &Path) -> NodeConfig {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    NodeConfig::from_toml_str(&String::from_utf8_lossy(&out.stdout), origin).unwrap()
}

const FILE: &str = r#"
data_dir = "/srv/ironroot"
database_url = "postgres://ironroot:s3cret-db-pw@db.example:5432/ironroot"
ca_passphrase_file = "/run/secrets/ca"

[api]
addr = "127.0.0.1:9443"
hostnames = ["ironroot.example"]

[api.limits]
handshake_timeout = "3s"
per_source_rate = 5.0

[api.enrollment]
rotation_grace = "12h"

[mqtt]
addr = "127.0.0.1:9883"
workers = 3

[mqtt.limits]
max_queued_messages = 10
publish_rate = { per_second = 2.0, burst = 4.0 }
connection_rate_per_ip = "off"
"#;

#[test]
fn file_only_sets_every_section_and_print_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, FILE).unwrap();
    let out = ironroot_testkit::run(
        up(dir.path(), &["--config"])
            .arg(&file)
            .arg("--print-config"),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("s3cret-db-pw"), "password printed: {text}");
    let c = printed(&out, &file);
    assert_eq!(c.data_dir, Path::new("/srv/ironroot"));
    assert_eq!(c.api.addr.port(), 9443);
    assert_eq!(c.api.hostnames, ["ironroot.example"]);
    assert_eq!(c.api.limits.handshake_timeout.as_secs(), 3);
    assert_eq!(c.api.limits.per_source_rate, 5.0);
    assert_eq!(c.api.enrollment.rotation_grace.as_secs(), 12 * 3600);
    assert_eq!(c.mqtt.addr.port(), 9883);
    assert_eq!(c.mqtt.workers, 3);
    assert_eq!(c.mqtt.limits.max_queued_messages, 10);
    assert_eq!(c.mqtt.limits.connection_rate_per_ip, None);
    assert_eq!(
        c.database_url.as_deref(),
        Some("postgres://ironroot:<redacted>@db.example:5432/ironroot")
    );
    // Parsed back equals the effective configuration (the file's, password aside).
    let mut effective = NodeConfig::from_toml_str(FILE, &file).unwrap();
    effective.database_url = c.database_url.clone();
    assert_eq!(c, effective);
}

#[test]
fn flags_override_env_and_env_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, FILE).unwrap();
    // Environment over the file.
    let out = ironroot_testkit::run(
        up(dir.path(), &["--print-config"])
            .env("IRONROOT_CONFIG", &file)
            .env("IRONROOT_API_ADDR", "127.0.0.1:7443")
            .env("IRONROOT_DATA_DIR", "/env/dir"),
    );
    let c = printed(&out, &file);
    assert_eq!(c.api.addr.port(), 7443);
    assert_eq!(c.data_dir, Path::new("/env/dir"));
    assert_eq!(c.mqtt.addr.port(), 9883, "the file's value stays");
    // Flags over the environment and the file.
    let out = ironroot_testkit::run(
        up(
            dir.path(),
            &["--print-config", "--api-addr", "127.0.0.1:6443"],
        )
        .args([
            "--mqtt-addr",
            "127.0.0.1:6883",
            "--hostname",
            "flag.example",
        ])
        .arg("--config")
        .arg(&file)
        .env("IRONROOT_API_ADDR", "127.0.0.1:7443"),
    );
    let c = printed(&out, &file);
    assert_eq!(c.api.addr.port(), 6443);
    assert_eq!(c.mqtt.addr.port(), 6883);
    assert_eq!(c.api.hostnames, ["flag.example"]);
    assert_eq!(
        c.api.limits.handshake_timeout.as_secs(),
        3,
        "file limits stay"
    );
}

#[test]
fn env_passphrase_is_redacted_and_defaults_print_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = ironroot_testkit::run(
        up(dir.path(), &["--print-config"]).env("IRONROOT_CA_PASSPHRASE", "very-secret-pp"),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("very-secret-pp"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    assert_eq!(printed(&out, Path::new("stdout")), NodeConfig::default());
    assert!(
        !dir.path().join("ironroot-data").exists(),
        "--print-config must not create the data directory"
    );
}

#[test]
fn unknown_key_and_bad_value_are_refused_with_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[mqtt.limits]\nmax_queued_mesages = 5\n").unwrap();
    let out = ironroot_testkit::run(up(dir.path(), &["--print-config", "--config"]).arg(&file));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("max_queued_mesages") && err.contains("bad.toml"),
        "{err}"
    );
    std::fs::write(&file, "[api.limits]\nrequest_timeout = \"soon\"\n").unwrap();
    let out = ironroot_testkit::run(up(dir.path(), &["--print-config", "--config"]).arg(&file));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("api.limits.request_timeout") && err.contains("bad.toml"),
        "{err}"
    );
    // The same path accepts the corrected file.
    std::fs::write(&file, "[api.limits]\nrequest_timeout = \"5s\"\n").unwrap();
    let out = ironroot_testkit::run(up(dir.path(), &["--print-config", "--config"]).arg(&file));
    assert_eq!(printed(&out, &file).api.limits.request_timeout.as_secs(), 5);
}
