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
        .env_remove("IRONROOT_CA_PASSPHRASE_FILE")
        .env_remove("IRONROOT_MQTT_PUBLISH_RATE");
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

/// Every `[mqtt.limits]` key has a `--mqtt-<key>` flag; `--print-config` shows its value.
const LIMIT_FLAGS: [(&str, &str); 18] = [
    ("--mqtt-max-packet-size", "4096"),
    ("--mqtt-inflight-window", "7"),
    ("--mqtt-max-queued-messages", "11"),
    ("--mqtt-backpressure-timeout", "3s"),
    ("--mqtt-max-subscriptions", "13"),
    ("--mqtt-max-keepalive-secs", "60"),
    ("--mqtt-tls-handshake-timeout", "4s"),
    ("--mqtt-connect-timeout", "5s"),
    ("--mqtt-max-concurrent-handshakes", "17"),
    ("--mqtt-max-connections-per-worker", "19"),
    ("--mqtt-max-session-expiry", "2h"),
    ("--mqtt-v3-session-expiry", "3h"),
    ("--mqtt-max-retained-messages", "23"),
    ("--mqtt-max-retained-bytes", "29"),
    ("--mqtt-max-tracked-devices", "31"),
    ("--mqtt-publish-rate", "5000/10000"),
    ("--mqtt-connection-rate-per-ip", "off"),
    ("--mqtt-memory-budget", "64MiB"),
];

#[test]
fn every_mqtt_limit_has_a_flag_that_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, FILE).unwrap();
    let mut cmd = up(dir.path(), &["--print-config", "--config"]);
    cmd.arg(&file);
    for (flag, value) in LIMIT_FLAGS {
        cmd.args([flag, value]);
    }
    let c = printed(&ironroot_testkit::run(&mut cmd), &file);
    let l = &c.mqtt.limits;
    let secs = |d: std::time::Duration| d.as_secs();
    assert_eq!(l.max_packet_size, 4096);
    assert_eq!(l.inflight_window, 7);
    assert_eq!(l.max_queued_messages, 11, "the flag beats the file's 10");
    assert_eq!(secs(l.backpressure_timeout), 3);
    assert_eq!(l.max_subscriptions, 13);
    assert_eq!(l.max_keepalive_secs, 60);
    assert_eq!(secs(l.tls_handshake_timeout), 4);
    assert_eq!(secs(l.connect_timeout), 5);
    assert_eq!(l.max_concurrent_handshakes, 17);
    assert_eq!(l.max_connections_per_worker, 19);
    assert_eq!(secs(l.max_session_expiry), 2 * 3600);
    assert_eq!(secs(l.v3_session_expiry), 3 * 3600);
    assert_eq!(l.max_retained_messages, 23);
    assert_eq!(l.max_retained_bytes, 29);
    assert_eq!(l.max_tracked_devices, 31);
    let rate = l.publish_rate.expect("a rate");
    assert_eq!(
        (rate.per_second, rate.burst),
        (5000.0, 10000.0),
        "the file said 2/4"
    );
    assert_eq!(l.connection_rate_per_ip, None);
    assert_eq!(l.memory_budget, 64 << 20);
    // The environment form, and the file's value where no flag is given.
    let out = ironroot_testkit::run(
        up(dir.path(), &["--print-config", "--config"])
            .arg(&file)
            .env("IRONROOT_MQTT_PUBLISH_RATE", "off"),
    );
    let c = printed(&out, &file);
    assert_eq!(c.mqtt.limits.publish_rate, None);
    assert_eq!(c.mqtt.limits.max_queued_messages, 10);
}

#[test]
fn a_bad_limit_flag_is_refused_like_the_file_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[mqtt.limits]\npublish_rate = { per_second = 0.0, burst = 1.0 }\n",
    )
    .unwrap();
    let out = ironroot_testkit::run(up(dir.path(), &["--print-config", "--config"]).arg(&file));
    assert!(!out.status.success());
    let file_err = String::from_utf8_lossy(&out.stderr).into_owned();
    let rule = "per_second must be > 0 and burst >= 1";
    assert!(file_err.contains(rule), "{file_err}");
    for (flag, value, needle) in [
        ("--mqtt-publish-rate", "0/1", rule),
        (
            "--mqtt-publish-rate",
            "fast",
            "expected \"off\" or <per_second>/<burst>",
        ),
        ("--mqtt-max-packet-size", "big", "expected u32"),
        ("--mqtt-connect-timeout", "soon", "--mqtt-connect-timeout"),
    ] {
        let out = ironroot_testkit::run(&mut up(dir.path(), &["--print-config", flag, value]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} accepted");
        assert!(
            err.contains(flag) && err.contains(needle),
            "{flag} {value}: {err}"
        );
    }
    // The same flag with a valid value is accepted.
    let out = ironroot_testkit::run(&mut up(
        dir.path(),
        &["--print-config", "--mqtt-publish-rate", "1/1"],
    ));
    let c = printed(&out, Path::new("stdout"));
    assert_eq!(c.mqtt.limits.publish_rate.map(|r| r.per_second), Some(1.0));
}
