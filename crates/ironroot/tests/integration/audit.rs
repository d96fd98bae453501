//! `ironroot audit verify|show|prove|check-proof|key|record` on a data directory (SQLite) and
//! on PostgreSQL. The log is written through the library (as the server does); tampering is
//! done with the databases' own shells (`sqlite3`, `psql`), as an attacker would.

use std::path::Path;
use std::process::{Command, Output};

use ironroot_audit::{Audit, Event, Outcome};
use ironroot_store::Store;
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

/// Fails with exactly one `error: …` line containing `needle`, and exit status `code`.
fn assert_fails_with(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status; stderr: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "one error line: {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains(needle),
        "{stderr:?} should mention {needle:?}"
    );
}

fn event(i: u64) -> Event {
    let device = format!("dev-{}", i % 5);
    match i % 3 {
        0 => Event::new(ironroot_audit::EventKind::CertIssued, "service:identity")
            .subject("certificate", format!("{i:04x}"))
            .detail("device", device),
        1 => Event::new(
            ironroot_audit::EventKind::MqttDenied,
            format!("device:{device}"),
        )
        .subject("topic", "fleet/secret")
        .source("192.0.2.7:51234")
        .outcome(Outcome::Denied),
        _ => Event::new(ironroot_audit::EventKind::DeviceAdded, "operator:alice")
            .subject("device", device),
    }
}

/// Writes `n` events through the library, as the server would (`url`: PostgreSQL).
fn populate(data_dir: &Path, url: Option<&str>, n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = match url {
            Some(url) => Store::open(url).await.unwrap(),
            None => Store::open_data_dir(data_dir).await.unwrap(),
        };
        let audit = Audit::open_store(&store, data_dir).await.unwrap();
        let mut handles = Vec::new();
        for i in 0..n {
            let audit = audit.clone();
            handles.push(tokio::spawn(async move { audit.record(event(i)).await }));
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
        drop(audit);
        store.close().await;
    });
}

fn sqlite3(data_dir: &Path, sql: &str) -> String {
    let db = data_dir.join(ironroot_store::DATABASE_FILE);
    stdout(&run_ok(Command::new(tool("sqlite3")).arg(&db).arg(sql)))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn verify_show_prove_and_check_proof_on_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    populate(&dir, None, 300);

    let out = run_ok(&mut ironroot(&dir, &["audit", "verify"]));
    let text = stdout(&out);
    assert!(text.starts_with("audit log intact: 300 entries"), "{text}");
    assert!(
        text.contains("witness:  matches the log at size 300"),
        "{text}"
    );

    // show: filters, JSON lines.
    let json = stdout(&run_ok(&mut ironroot(
        &dir,
        &["audit", "show", "--device", "dev-3", "--json"],
    )));
    let entries: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = (0..300u64).filter(|i| i % 5 == 3).count();
    assert_eq!(entries.len(), expected, "{json}");
    for e in &entries {
        let about = e["subject"]["id"] == "dev-3"
            || e["actor"] == "device:dev-3"
            || e["details"]["device"] == "dev-3";
        assert!(about, "{e}");
    }
    let first = &entries[0];
    assert_eq!(first["index"], 3);
    assert_eq!(first["type"], "cert.issued");
    assert_eq!(first["leaf_hash"].as_str().unwrap().len(), 64);
    let denied = stdout(&run_ok(&mut ironroot(
        &dir,
        &["audit", "show", "--type", "mqtt"],
    )));
    assert_eq!(denied.lines().count(), 100);
    assert!(
        denied.lines().all(|l| l.contains(" denied mqtt.denied ")),
        "{denied}"
    );
    let none = stdout(&run_ok(&mut ironroot(
        &dir,
        &["audit", "show", "--since", "9999-01-01"],
    )));
    assert_eq!(none, "no matching entries\n");

    // key, prove, check-proof from elsewhere without the data directory.
    let key = stdout(&run_ok(&mut ironroot(&dir, &["audit", "key"])));
    let key = key.trim();
    assert_eq!(
        key,
        std::fs::read_to_string(dir.join("audit/checkpoint.pub"))
            .unwrap()
            .trim()
    );
    let proof = tmp.path().join("proof-123.txt");
    run_ok(&mut ironroot(
        &dir,
        &["audit", "prove", "123", "--out", proof.to_str().unwrap()],
    ));
    let elsewhere = tempfile::tempdir().unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    check
        .args(["audit", "check-proof", "--key", key])
        .arg(&proof)
        .current_dir(elsewhere.path())
        .env_remove("IRONROOT_DATA_DIR")
        .env_remove("IRONROOT_DATABASE_URL");
    let checked = stdout(&run_ok(&mut check));
    assert!(
        checked.starts_with("proof valid: entry 123 is in log ironroot/audit/"),
        "{checked}"
    );
    assert!(checked.contains("at size 300"), "{checked}");
    assert!(checked.contains("cert.issued"), "{checked}");

    // A proof edited to claim another entry, or checked with another log's key, fails.
    let text = std::fs::read_to_string(&proof).unwrap();
    let forged = tmp.path().join("forged.txt");
    std::fs::write(&forged, text.replace("index: 123\n", "index: 124\n")).unwrap();
    let out = run(ironroot(&dir, &["audit", "check-proof", "--key", key]).arg(&forged));
    assert_fails_with(&out, 3, "proof does not verify");
    let other = tempfile::tempdir().unwrap();
    populate(other.path(), None, 1);
    let other_key = other.path().join("audit/checkpoint.pub");
    let out = run(ironroot(
        &dir,
        &["audit", "check-proof", "--key", other_key.to_str().unwrap()],
    )
    .arg(&proof));
    assert_fails_with(&out, 3, "not signed by a trusted key");

    // Out of range.
    let out = run(&mut ironroot(&dir, &["audit", "prove", "300"]));
    assert_fails_with(&out, 1, "entry 300 is not in the log (it has 300 entries)");
}

#[test]
fn verify_names_the_first_tampered_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    populate(&dir, None, 200);
    // Delete entry 150, and rewrite the denied topic of entry 76 (same length, so the entry
    // still decodes): the first tampering in log order is the one named.
    sqlite3(&dir, "DELETE FROM audit_leaves WHERE idx = 150");
    let hex = sqlite3(&dir, "SELECT hex(data) FROM audit_leaves WHERE idx = 76");
    let edited = hex
        .trim()
        .replace(&to_hex(b"fleet/secret"), &to_hex(b"fleet/public"));
    assert_ne!(edited, hex.trim());
    sqlite3(
        &dir,
        &format!("UPDATE audit_leaves SET data = X'{edited}' WHERE idx = 76"),
    );
    let shown = stdout(&run_ok(&mut ironroot(
        &dir,
        &["audit", "show", "--type", "mqtt"],
    )));
    assert!(shown.contains("#76 ") && shown.contains("subject=topic:fleet/public"));
    let out = run(&mut ironroot(&dir, &["audit", "verify"]));
    assert_fails_with(&out, 3, "entry 76 was altered");
    assert!(out.stdout.is_empty());
}

#[test]
fn verify_detects_a_restored_older_database_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    populate(&dir, None, 50);
    let db = dir.join(ironroot_store::DATABASE_FILE);
    let backup = tmp.path().join("backup.db");
    assert!(!dir.join("ironroot.db-wal").exists(), "closed cleanly");
    std::fs::copy(&db, &backup).unwrap();
    for note in ["after backup 1", "after backup 2"] {
        run_ok(&mut ironroot(
            &dir,
            &[
                "audit",
                "record",
                "--type",
                "operator.note",
                "--actor",
                "operator:alice",
                "--detail",
                &format!("text={note}"),
            ],
        ));
    }
    run_ok(&mut ironroot(&dir, &["audit", "verify"]));
    // Put the older copy back (an attacker hiding the two notes).
    std::fs::copy(&backup, &db).unwrap();
    let out = run(&mut ironroot(&dir, &["audit", "verify"]));
    assert_fails_with(&out, 3, "rolled back or truncated: it has 50 entries");
    // Verification with a pinned key of another log: nothing it is given is signed by it.
    let other = tempfile::tempdir().unwrap();
    populate(other.path(), None, 1);
    let other_key = std::fs::read_to_string(other.path().join("audit/checkpoint.pub")).unwrap();
    let out = run(&mut ironroot(
        &dir,
        &["audit", "verify", "--key", other_key.trim()],
    ));
    assert_fails_with(&out, 3, "not signed by a trusted key");
}

#[test]
fn errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nothing-here");
    let out = run(&mut ironroot(&dir, &["audit", "verify"]));
    assert_fails_with(&out, 1, "no ironroot database at");
    assert!(!dir.exists(), "read commands create nothing");
    let out = run(&mut ironroot(&dir, &["audit", "key"]));
    assert_fails_with(&out, 1, "no audit key at");
    let out = run(
        ironroot(&dir, &["audit", "check-proof", "--key", "not-a-key"])
            .arg(tmp.path().join("missing")),
    );
    assert_fails_with(&out, 1, "--key is neither a verifier key");
    let garbage = tmp.path().join("garbage.txt");
    std::fs::write(&garbage, "hello\n").unwrap();
    populate(tmp.path(), None, 1);
    let key = tmp.path().join("audit/checkpoint.pub");
    let out = run(ironroot(
        &dir,
        &["audit", "check-proof", "--key", key.to_str().unwrap()],
    )
    .arg(&garbage));
    assert_fails_with(&out, 3, "is not a valid proof");
    let out = run(&mut ironroot(
        &dir,
        &["audit", "show", "--since", "yesterday"],
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected an RFC 3339 time"));
}

#[test]
fn verify_on_postgresql_with_database_url() {
    let admin = std::env::var("IRONROOT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("ironroot_cli_audit_{}", std::process::id());
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
    let dir = tmp.path().join("data");
    let result = std::panic::catch_unwind(|| {
        populate(&dir, Some(&url), 120);
        let verify = ["audit", "verify", "--database-url", &url];
        let text = stdout(&run_ok(&mut ironroot(&dir, &verify)));
        assert!(text.starts_with("audit log intact: 120 entries"), "{text}");
        let counted =
            run_ok(Command::new(&psql).args([&url, "-Atc", "SELECT count(*) FROM audit_leaves"]));
        assert_eq!(
            stdout(&counted).trim(),
            "120",
            "the entries are in PostgreSQL"
        );
        // Delete a row and renumber the rest to close the gap.
        run_ok(Command::new(&psql).args([
            &url,
            "-c",
            "BEGIN; DELETE FROM audit_leaves WHERE idx = 40; \
             UPDATE audit_leaves SET idx = -idx WHERE idx > 40; \
             UPDATE audit_leaves SET idx = -idx - 1 WHERE idx < 0; COMMIT;",
        ]));
        let out = run(&mut ironroot(&dir, &verify));
        assert_fails_with(&out, 3, "entry 40 holds the content recorded for entry 41");
    });
    run_ok(Command::new(&psql).args([&admin, "-c", &format!("DROP DATABASE {name} WITH (FORCE)")]));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
