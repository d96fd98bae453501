//! `ironroot firmware scan IMAGE`: the static secret/weakness scanner (`ironroot-scan`) as a
//! CI gate. Human table by default, JSON with `--json`; exit 0 when no finding reaches
//! `--fail-on` (default `high`), 1 when one does, 2 on a usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use ironroot_scan::{Finding, Report, Scanner, Severity};
use serde::Serialize;

/// Exit status when a finding reaches the `--fail-on` severity.
const EXIT_FINDINGS: u8 = 1;
/// Exit status of a usage or I/O error (clap's own usage errors use 2 as well).
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Firmware binary: raw, MCUboot image or ESP application image.
    image: PathBuf,
    /// Print the report as JSON (fields documented in docs/security-testing.md).
    #[arg(long)]
    json: bool,
    /// Exit 1 when a finding is at or above this severity (info, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    fail_on: Severity,
    /// Show only findings at or above this severity (the exit status still follows --fail-on).
    #[arg(long, value_name = "SEVERITY", default_value = "info")]
    min_severity: Severity,
}

/// The JSON document `--json` prints.
#[derive(Serialize)]
struct JsonReport<'a> {
    file: String,
    #[serde(flatten)]
    report: &'a Report,
    min_severity: Severity,
    fail_on: Severity,
    failed: bool,
}

/// Runs the scan; the exit status is the gate's verdict.
pub(crate) fn run(a: ScanArgs) -> ExitCode {
    match scan(&a) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(EXIT_FINDINGS),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn scan(a: &ScanArgs) -> Result<bool> {
    let bytes =
        std::fs::read(&a.image).with_context(|| format!("reading {}", a.image.display()))?;
    // Scan down to the lower of the two thresholds: the gate sees findings the display hides.
    let report = Scanner::new()
        .min_severity(a.min_severity.min(a.fail_on))
        .scan(&bytes);
    let failed = report.fails(a.fail_on);
    let mut shown = report.clone();
    shown.findings.retain(|f| f.severity >= a.min_severity);
    let file = a.image.display().to_string();
    if a.json {
        let doc = JsonReport {
            file,
            report: &shown,
            min_severity: a.min_severity,
            fail_on: a.fail_on,
            failed,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", human(&file, &shown, a.fail_on, failed));
    }
    Ok(failed)
}

fn human(file: &str, report: &Report, fail_on: Severity, failed: bool) -> String {
    let mut out = format!(
        "{file}: {} image, {} bytes, {} finding(s){}\n",
        report.container.name(),
        report.scanned_len,
        report.findings.len(),
        if report.truncated {
            " (truncated at the finding cap)"
        } else {
            ""
        }
    );
    if !report.findings.is_empty() {
        out.push_str(&format!(
            "{:<12}{:<10}{:<23}DETAIL\n",
            "OFFSET", "SEVERITY", "KIND"
        ));
        for Finding {
            kind,
            severity,
            offset,
            detail,
            ..
        } in &report.findings
        {
            out.push_str(&format!(
                "{:<12}{:<10}{:<23}{detail}\n",
                format!("{offset:#010x}"),
                severity.as_str(),
                kind.as_str()
            ));
        }
    }
    out.push_str(&if failed {
        format!("FAIL: findings at or above {fail_on}\n")
    } else {
        format!("PASS: no finding at or above {fail_on}\n")
    });
    out
}
