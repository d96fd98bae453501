//! `ironroot device add|list|show` on a data directory (SQLite) and on PostgreSQL.

use std::path::Path;
use std::process::{Command, Output};

use ironroot_testkit::{run, run_ok, tool};

fn ironroot(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env("IRONROOT_DATA_DIR", data_dir);
    cmd
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    assert!(stderr.starts_with("error: "), "one error line: {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains(needle),
        "{stderr:?} should mention {needle:?}"
    );
}

#[test]
fn add_list_and_show_on_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let dir_arg = dir.to_str().unwrap();
    let out = run_ok(&mut ironroot(
        &dir,
        &[
            "device",
            "add",
            "--data-dir",
            dir_arg,
            "sensor-0001",
            "--group",
            "line-b",
            "--group",
            "eu",
            "--attr",
            "site=lyon",
            "--attr",
            "hw=rev-c",
            "--owner",
            "plant 7",
        ],
    ));
    let text = stdout(&out);
    assert!(
        text.starts_with("added device sensor-0001 (manufactured) to "),
        "{text}"
    );
    assert!(dir.join("ironroot.db").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data directory is private");
    }
    // --data-dir from the environment (IRONROOT_DATA_DIR) works the same.
    run_ok(&mut ironroot(&dir, &["device", "add", "sensor-0002"]));

    let list = stdout(&run_ok(&mut ironroot(&dir, &["device", "list"])));
    let lines: Vec<_> = list.lines().collect();
    assert!(lines[0].starts_with("ID"), "{list}");
    assert!(lines[1].starts_with("sensor-0001") && lines[1].contains("manufactured"));
    assert!(
        lines[1].contains("eu,line-b") && lines[1].contains("plant 7"),
        "{list}"
    );
    assert!(lines[2].starts_with("sensor-0002"));
    assert_eq!(lines[3], "2 device(s)");
    let only_eu = stdout(&run_ok(&mut ironroot(
        &dir,
        &["device", "list", "--group", "eu"],
    )));
    assert!(
        only_eu.contains("sensor-0001") && !only_eu.contains("sensor-0002"),
        "{only_eu}"
    );
    let none = stdout(&run_ok(&mut ironroot(
        &dir,
        &["device", "list", "--state", "active"],
    )));
    assert_eq!(none.trim(), "no devices");

    let show = stdout(&run_ok(&mut ironroot(
        &dir,
        &["device", "show", "sensor-0001"],
    )));
    for expected in [
        "device sensor-0001",
        "state:        manufactured",
        "owner:        plant 7",
        "groups:       eu, line-b",
        "attributes:   hw=rev-c, site=lyon",
        "certificates: none",
    ] {
        assert!(
            show.contains(expected),
            "{expected:?} missing from:\n{show}"
        );
    }
}

#[test]
fn bad_input_fails_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_ok(&mut ironroot(dir, &["device", "add", "dev-1"]));
    assert_fails_with(
        &run(&mut ironroot(dir, &["device", "add", "dev-1"])),
        "already exists",
    );
    assert_fails_with(
        &run(&mut ironroot(dir, &["device", "add", "a/b"])),
        "only letters, digits and . _ : - are allowed",
    );
    assert_fails_with(
        &run(&mut ironroot(
            dir,
            &["device", "add", "dev-2", "--attr", "room=#"],
        )),
        "attribute value",
    );
    assert_fails_with(
        &run(&mut ironroot(dir, &["device", "show", "dev-404"])),
        "unknown device",
    );
    let bad_attr = run(&mut ironroot(
        dir,
        &["device", "add", "dev-3", "--attr", "novalue"],
    ));
    assert!(!bad_attr.status.success());
    assert!(String::from_utf8_lossy(&bad_attr.stderr).contains("expected KEY=VALUE"));
    // Nothing was stored by the failed commands.
    let list = stdout(&run_ok(&mut ironroot(dir, &["device", "list"])));
    assert!(list.contains("1 device(s)"), "{list}");

    let empty = tmp.path().join("nothing-here");
    assert_fails_with(
        &run(&mut ironroot(&empty, &["device", "list"])),
        "no ironroot database",
    );
    assert!(
        !empty.exists(),
        "read commands do not create a data directory"
    );
}

#[test]
fn database_url_selects_postgresql() {
    let admin = std::env::var("IRONROOT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("ironroot_cli_test_{}", std::process::id());
    let psql = tool("psql");
    let created = run(Command::new(&psql).args([&admin, "-c", &format!("CREATE DATABASE {name}")]));
    assert!(
        created.status.success(),
        "PostgreSQL at {admin} is required (run `bash .ci/run`): {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => unreachable!("a postgres URL has a path"),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("unused");
    let result = std::panic::catch_unwind(|| {
        run_ok(&mut ironroot(
            &dir,
            &[
                "device",
                "add",
                "--database-url",
                &url,
                "pg-dev",
                "--group",
                "g",
            ],
        ));
        let show = stdout(&run_ok(&mut ironroot(
            &dir,
            &["device", "show", "--database-url", &url, "pg-dev"],
        )));
        assert!(show.contains("groups:       g"), "{show}");
        // The registry (and the audit log's entries) live in PostgreSQL: no SQLite database in
        // the data directory. The data directory holds only the audit log's signing key and
        // witness (the local `device add` is audited like the server path, issue 12).
        assert!(
            !dir.join("ironroot.db").exists(),
            "--database-url must not create a SQLite registry in the data directory"
        );
        let counted =
            run_ok(Command::new(&psql).args([&url, "-Atc", "SELECT count(*) FROM devices"]));
        assert_eq!(stdout(&counted).trim(), "1", "the row is in PostgreSQL");
        let audited =
            run_ok(Command::new(&psql).args([&url, "-Atc", "SELECT count(*) FROM audit_leaves"]));
        assert_eq!(
            stdout(&audited).trim(),
            "1",
            "the device add is audited in PostgreSQL"
        );
    });
    run_ok(Command::new(&psql).args([&admin, "-c", &format!("DROP DATABASE {name} WITH (FORCE)")]));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
