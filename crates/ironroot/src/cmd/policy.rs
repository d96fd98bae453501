//! `ironroot policy`: check MQTT authorization policies before they reach the broker.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use ironroot_policy::{LintCode, MAX_DOCUMENT_BYTES, PolicyDocument, Severity, builtin, lint};

/// Work with AWS IoT-style device policies (who may connect, publish, subscribe, receive).
#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file and report risky grants.
    ///
    /// The file is a JSON policy document in AWS IoT Core syntax. Invalid documents are
    /// refused with the field and line at fault. Valid ones are checked for over-permissive
    /// grants (every topic, any client id, wildcards next to variables, a Deny on a topic
    /// filter that wider subscriptions bypass, ...). Each finding prints as
    /// FILE:LINE:COLUMN: SEVERITY[CODE]: message, with why it matters and how to fix it.
    ///
    /// Exit status: 0 when the policy is valid and has no finding at or above --fail-on,
    /// 1 otherwise.
    #[command(after_help = lint_codes_help())]
    Lint {
        /// The policy document to check.
        #[arg(long, value_name = "P.json")]
        file: PathBuf,
        /// Lowest finding severity that makes the command fail.
        #[arg(long, value_enum, default_value_t = FailOn::Warning)]
        fail_on: FailOn,
    },
    /// Print a built-in policy (a starting point for your own).
    ShowBuiltin {
        /// Which built-in policy.
        #[arg(value_enum)]
        which: Builtin,
    },
}

/// Threshold for `lint --fail-on`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum FailOn {
    /// Fail on any finding.
    Info,
    /// Fail on warnings and high-severity findings.
    Warning,
    /// Fail only on high-severity findings.
    High,
    /// Never fail because of findings (invalid documents still fail).
    Never,
}

impl FailOn {
    fn fails(self, s: Severity) -> bool {
        match self {
            FailOn::Info => true,
            FailOn::Warning => s >= Severity::Warning,
            FailOn::High => s >= Severity::High,
            FailOn::Never => false,
        }
    }
}

/// The built-in policies.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Builtin {
    /// What every device gets: its own telemetry (publish) and commands (subscribe, receive).
    DefaultDevice,
    /// What a quarantined device keeps: publishing to its own status topic.
    Quarantine,
}

fn lint_codes_help() -> String {
    let mut s = String::from("Finding codes:\n");
    for code in LintCode::ALL {
        s.push_str(&format!(
            "  {} ({}):\n      {}\n",
            code.name(),
            code.severity(),
            code.explanation()
        ));
    }
    s
}

/// Runs `ironroot policy ...`.
pub fn run(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Lint { file, fail_on } => run_lint(&file, fail_on),
        PolicyCommand::ShowBuiltin { which } => {
            println!(
                "{}",
                match which {
                    Builtin::DefaultDevice => builtin::DEFAULT_DEVICE_POLICY_JSON,
                    Builtin::Quarantine => builtin::QUARANTINE_POLICY_JSON,
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_lint(path: &Path, fail_on: FailOn) -> anyhow::Result<ExitCode> {
    let shown = path.display();
    let bytes = read_limited(path).with_context(|| format!("cannot read {shown}"))?;
    let doc = PolicyDocument::parse_bytes(&bytes).with_context(|| shown.to_string())?;
    let findings = lint(&doc);
    let mut failing = 0;
    for f in &findings {
        let at = f
            .location
            .map(|l| format!("{}:{}", l.line, l.column))
            .unwrap_or_else(|| "1:1".into());
        println!("{shown}:{at}: {}[{}]: {}", f.severity, f.code, f.message);
        println!("    why: {}", f.code.explanation());
        println!("    fix: {}", f.fix);
        if fail_on.fails(f.severity) {
            failing += 1;
        }
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    if findings.is_empty() {
        println!(
            "{shown}: valid policy, {} statement(s), no findings",
            doc.statements().len()
        );
    } else {
        println!(
            "{shown}: valid policy, {} finding(s): {} high, {} warning, {} info",
            findings.len(),
            count(Severity::High),
            count(Severity::Warning),
            count(Severity::Info)
        );
    }
    Ok(if failing > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads at most one byte more than a policy may have, so a huge file is not loaded.
fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}
