//! `ironroot defend …`: fleet defense. `defend audit` runs the configuration audit
//! (`ironroot_defender::audit`) on a data directory (SQLite) or a PostgreSQL registry, prints
//! the findings, records the run in the audit log, and exits non-zero when a finding is at or
//! above `--fail-on`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ironroot_audit::Audit;
use ironroot_defender::audit::{self, AuditOptions, AuditReport, Severity, Thresholds};

use crate::cmd::device::{StoreArgs, cli_origin};

/// Exit status when a finding is at or above `--fail-on` (1 is any other failure).
const EXIT_FINDINGS: u8 = 2;

/// Fleet defense: audit the fleet's configuration (detectors and mitigations come later).
#[derive(Debug, Args)]
pub struct DefendArgs {
    #[command(subcommand)]
    command: DefendCommand,
}

#[derive(Debug, Subcommand)]
enum DefendCommand {
    /// Audit the fleet's configuration: CA and device certificates (expiring, too old, weak
    /// keys, keys shared between devices, CN naming another device, left valid under a revoked
    /// intermediate), policies (the `policy lint` findings), the audit log (key present,
    /// checkpoints witnessed) and attestation age. Each run is recorded in the audit log
    /// (`defender.audit_run`, counts only).
    ///
    /// Skipped offline: revoked-certificate-connected (needs the live sessions of a running
    /// broker) and firmware-version-never-released (no release registry yet).
    ///
    /// Exit status: 0, or 2 when a finding is at or above --fail-on; 1 when the audit could
    /// not run or not be recorded.
    ///
    /// Example: ironroot defend audit --suppressions accepted.toml --fail-on high
    Audit {
        #[command(flatten)]
        store: StoreArgs,
        /// TOML file of accepted findings: `[[suppress]]` tables with `check`, `resource`
        /// (glob over the resource id or serial), optional `expires` (RFC 3339) and `reason`.
        /// Suppressed findings are counted, not shown.
        #[arg(long, value_name = "FILE")]
        suppressions: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 2 when a finding of this severity or higher is shown
        /// (low, medium, high, critical).
        #[arg(long, value_name = "SEVERITY")]
        fail_on: Option<Severity>,
        /// Days before a CA certificate's end that count as expiring.
        #[arg(long, default_value_t = Thresholds::default().ca_expiry_days, value_name = "DAYS")]
        ca_expiry_days: u32,
        /// Days before an active device certificate's end that count as expiring.
        #[arg(long, default_value_t = Thresholds::default().device_expiry_days, value_name = "DAYS")]
        device_expiry_days: u32,
        /// Age in days after which a valid operational certificate is too old.
        #[arg(long, default_value_t = Thresholds::default().device_max_age_days, value_name = "DAYS")]
        device_max_age_days: u32,
        /// RSA keys below this many bits are weak.
        #[arg(long, default_value_t = Thresholds::default().min_rsa_bits, value_name = "BITS")]
        min_rsa_bits: u32,
        /// Elliptic-curve keys below this many bits are weak.
        #[arg(long, default_value_t = Thresholds::default().min_ec_bits, value_name = "BITS")]
        min_ec_bits: u32,
        /// Days after which an active device's latest boot report is too old.
        #[arg(long, default_value_t = Thresholds::default().attestation_max_age_days, value_name = "DAYS")]
        attestation_max_age_days: u32,
    },
}

/// Runs `ironroot defend …`.
pub fn run(args: DefendArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            DefendCommand::Audit {
                store: location,
                suppressions,
                json,
                fail_on,
                ca_expiry_days,
                device_expiry_days,
                device_max_age_days,
                min_rsa_bits,
                min_ec_bits,
                attestation_max_age_days,
            } => {
                let suppressions = match &suppressions {
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        audit::parse_suppressions(&text)
                            .with_context(|| format!("in {}", path.display()))?
                    }
                    None => Vec::new(),
                };
                let options = AuditOptions {
                    thresholds: Thresholds {
                        ca_expiry_days,
                        device_expiry_days,
                        device_max_age_days,
                        min_rsa_bits,
                        min_ec_bits,
                        attestation_max_age_days,
                    },
                    suppressions,
                };
                let store = location.open(false).await?;
                let report = audit::audit_installation(&store, &location.data_dir, None, &options)
                    .await
                    .context("cannot audit the installation")?;
                if json {
                    println!("{}", report.to_json());
                } else {
                    print!("{}", text(&report));
                }
                let recorded = async {
                    let log = Audit::open_store(&store, &location.data_dir).await?;
                    audit::record_run(&log, &cli_origin(), &report).await?;
                    anyhow::Ok(())
                }
                .await;
                store.close().await;
                recorded.context("the audit ran but could not be recorded in the audit log")?;
                let failed = fail_on.is_some_and(|s| report.has_finding_at_or_above(s));
                Ok(if failed {
                    ExitCode::from(EXIT_FINDINGS)
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    })
}

/// The report for a terminal: one block per finding, then the counts.
fn text(report: &AuditReport) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{:<8} {}  {} {}{}\n         {}",
            f.severity.as_str().to_uppercase(),
            f.check,
            f.resource.kind.as_str(),
            f.resource.id,
            f.serial
                .as_deref()
                .map_or(String::new(), |s| format!(" (serial {s})")),
            f.message
        );
    }
    for s in &report.checks_skipped {
        let _ = writeln!(out, "skipped  {}: {}", s.check, s.reason);
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "{} checks run, {} findings (critical {}, high {}, medium {}, low {}), {} suppressed",
        report.checks_run.len(),
        report.findings.len(),
        s.critical,
        s.high,
        s.medium,
        s.low,
        report.suppressed
    );
    out
}
