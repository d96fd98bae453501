//! `ironroot policy lint` and `show-builtin`, run as a user would.

use std::path::PathBuf;
use std::process::{Command, Output};

fn ironroot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ironroot"))
        .args(args)
        .output()
        .expect("run ironroot")
}

fn write_policy(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ironroot-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn lint_passes_a_scoped_policy() {
    let out = ironroot(&["policy", "show-builtin", "default-device"]);
    assert!(out.status.success());
    let path = write_policy("default.json", &text(&out.stdout));
    let out = ironroot(&["policy", "lint", "--file", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid policy, 4 statement(s), no findings"));
}

#[test]
fn lint_reports_findings_with_location_and_fails() {
    let path = write_policy(
        "broad.json",
        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\n    \"Effect\": \"Allow\",\n    \"Action\": \"iot:*\",\n    \"Resource\": \"topic/*\"\n  }]\n}\n",
    );
    let p = path.to_str().unwrap();
    let out = ironroot(&["policy", "lint", "--file", p]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("{p}:6:17: high[topic-catch-all]")),
        "{stdout}"
    );
    assert!(stdout.contains("high[allow-all-actions]"), "{stdout}");
    assert!(stdout.contains("    fix: "), "{stdout}");
    // The same findings do not fail with --fail-on never.
    let out = ironroot(&["policy", "lint", "--file", p, "--fail-on", "never"]);
    assert!(out.status.success());
}

#[test]
fn lint_fail_on_threshold_separates_info_from_warning() {
    let path = write_policy(
        "info.json",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/a"}}"#,
    );
    let p = path.to_str().unwrap();
    let out = ironroot(&["policy", "lint", "--file", p]);
    assert!(
        out.status.success(),
        "an info finding passes the default threshold"
    );
    assert!(text(&out.stdout).contains("info[receive-without-subscribe]"));
    let out = ironroot(&["policy", "lint", "--file", p, "--fail-on", "info"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn invalid_policy_is_one_line_error_with_field_and_line() {
    let path = write_policy(
        "bad.json",
        "{\"Version\":\"2012-10-17\",\"Statement\":[\n{\"Effect\":\"Allow\",\"Action\":\"iot:Publsh\",\"Resource\":\"*\"}]}",
    );
    let p = path.to_str().unwrap();
    let out = ironroot(&["policy", "lint", "--file", p]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: {p}: Statement[0].Action (line 2, column 28): unknown action \"iot:Publsh\" (did you mean \"iot:Publish\"?)"
        )),
        "{stderr}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = ironroot(&["policy", "lint", "--file", "/nonexistent/p.json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot read /nonexistent/p.json: "),
        "{stderr}"
    );
}

#[test]
fn help_lists_finding_codes() {
    let out = ironroot(&["policy", "lint", "--help"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("deny-subscribe-without-receive"),
        "{stdout}"
    );
    assert!(stdout.contains("--fail-on"));
}
