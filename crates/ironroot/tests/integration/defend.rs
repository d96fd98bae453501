//! `ironroot defend audit` run as an operator would: a clean installation exits 0 with no
//! findings; a planted catch-all policy is found, `--fail-on` decides the exit status, a
//! suppressions file hides and counts it, and every run is in the audit log.

use std::path::Path;
use std::process::Command;

use ironroot_testkit::{run, run_ok};

fn ironroot(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot"));
    cmd.args(args)
        .env_remove("IRONROOT_DATABASE_URL")
        .env_remove("IRONROOT_SERVER")
        .env_remove("IRONROOT_CA_PASSPHRASE")
        .env(
            "IRONROOT_ROOT_PASSPHRASE",
            "root passphrase for the defend test",
        )
        .env("IRONROOT_DATA_DIR", data_dir);
    cmd
}

fn report(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn defend_audit_finds_a_planted_policy_and_fail_on_sets_the_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    run_ok(&mut ironroot(&data, &["ca", "init"]));
    run_ok(&mut ironroot(&data, &["device", "add", "sensor-1"]));

    // Clean: exit 0 even with the strictest --fail-on, no findings.
    let out = run(&mut ironroot(
        &data,
        &["defend", "audit", "--json", "--fail-on", "low"],
    ));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = report(&out);
    assert_eq!(clean["findings"], serde_json::json!([]), "{clean:#}");
    assert!(clean["checks_run"].as_array().unwrap().len() >= 10);

    // Planted: an attached-anywhere catch-all policy.
    let policy = tmp.path().join("all.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#,
    )
    .unwrap();
    run_ok(&mut ironroot(
        &data,
        &[
            "policy",
            "create",
            "all",
            "--file",
            policy.to_str().unwrap(),
        ],
    ));
    let out = run(&mut ironroot(
        &data,
        &["defend", "audit", "--json", "--fail-on", "high"],
    ));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = report(&out);
    let findings = found["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .all(|f| f["check"] == "policy-overly-permissive" && f["resource"]["id"] == "all"),
        "{found:#}"
    );
    assert!(found["summary"]["high"].as_u64().unwrap() >= 1);
    // Below the threshold: exit 0; no --fail-on: exit 0; text output names the check.
    let out = run(&mut ironroot(
        &data,
        &["defend", "audit", "--fail-on", "critical"],
    ));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("HIGH     policy-overly-permissive"));

    // Suppressed: hidden, counted, exit 0 with --fail-on high.
    let accepted = tmp.path().join("accepted.toml");
    std::fs::write(
        &accepted,
        "[[suppress]]\ncheck = \"policy-overly-permissive\"\nresource = \"al?\"\nreason = \"lab broker\"\n",
    )
    .unwrap();
    let out = run(&mut ironroot(
        &data,
        &[
            "defend",
            "audit",
            "--json",
            "--fail-on",
            "high",
            "--suppressions",
            accepted.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hidden = report(&out);
    assert_eq!(hidden["findings"], serde_json::json!([]));
    assert_eq!(hidden["suppressed"].as_u64(), Some(findings.len() as u64));

    // A bad suppressions file is an error (exit 1) naming the problem.
    std::fs::write(
        &accepted,
        "[[suppress]]\ncheck = \"nope\"\nresource = \"*\"\nreason = \"x\"\n",
    )
    .unwrap();
    let out = run(&mut ironroot(
        &data,
        &[
            "defend",
            "audit",
            "--suppressions",
            accepted.to_str().unwrap(),
        ],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown check \"nope\""));

    // Every completed run is in the audit log with its counts (4 runs above).
    let out = run_ok(&mut ironroot(
        &data,
        &["audit", "show", "--type", "defender.audit_run", "--json"],
    ));
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 4, "{runs:#?}");
    let text = serde_json::to_string(&runs[1]).unwrap();
    assert!(text.contains("\"suppressed\":\"0\""), "{text}");
    assert!(
        serde_json::to_string(&runs[3])
            .unwrap()
            .contains(&format!("\"suppressed\":\"{}\"", findings.len()))
    );
}
