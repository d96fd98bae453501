//! Issue 12, defect 4: a change made by the CLI on a data directory is audited like the same
//! change through the server (both call `ironroot_fleet::Fleet`), write-ahead.

use std::path::Path;
use std::process::Command;

use ironroot_testkit::{run, run_ok, tool};

fn ironroot(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env("USER", "alice")
        .env("IRONROOT_DATA_DIR", data_dir);
    cmd
}

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/devices/${iot:ClientId}/telemetry"}]}"#;

/// The audit entries of `kind`, as `audit show --json` prints them.
fn entries(dir: &Path, kind: &str) -> Vec<serde_json::Value> {
    let out = run_ok(&mut ironroot(
        dir,
        &["audit", "show", "--json", "--type", kind],
    ));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn regression_local_device_add_leaves_a_device_added_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    run_ok(&mut ironroot(
        &dir,
        &["device", "add", "sensor-1", "--group", "line-b"],
    ));
    let added = entries(&dir, "device.added");
    assert_eq!(added.len(), 1, "{added:?}");
    let e = &added[0];
    // Kind, subject and outcome as the server's operator API writes them (same Fleet call).
    assert_eq!(e["type"], "device.added");
    assert_eq!(e["subject"]["kind"], "device");
    assert_eq!(e["subject"]["id"], "sensor-1");
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["actor"], "operator:alice");
    assert_eq!(e["source"], "cli");
    assert_eq!(e["details"]["groups"], "line-b");
    run_ok(&mut ironroot(&dir, &["audit", "verify"]));
}

#[test]
fn regression_policy_create_with_an_unwritable_audit_log_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = tmp.path().join("p.json");
    std::fs::write(&file, POLICY).unwrap();
    let file = file.to_str().unwrap();
    run_ok(&mut ironroot(&dir, &["device", "add", "d-1"]));
    // Accepted while the audit log works.
    run_ok(&mut ironroot(
        &dir,
        &["policy", "create", "before", "--file", file],
    ));
    // Every further audit append now fails (as with a full disk).
    run_ok(
        Command::new(tool("sqlite3"))
            .arg(dir.join("ironroot.db"))
            .arg(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_leaves \
         BEGIN SELECT RAISE(ABORT, 'audit log made unwritable by the test'); END;",
            ),
    );
    let out = run(&mut ironroot(
        &dir,
        &["policy", "create", "after", "--file", file],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    assert!(stderr.contains("audit log"), "{stderr}");
    let out = run(&mut ironroot(
        &dir,
        &["policy", "attach", "before", "--device", "d-1"],
    ));
    assert!(!out.status.success());
    let list = run_ok(&mut ironroot(&dir, &["policy", "list"]));
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("before") && !list.contains("after"), "{list}");
    assert!(list.contains("(not attached)"), "{list}");
}
