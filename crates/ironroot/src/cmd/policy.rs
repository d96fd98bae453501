//! `ironroot policy`: check MQTT authorization policies, store them in the registry (versioned)
//! and attach them to devices and groups. Registry changes are audited and reach running
//! brokers through the change feed within a second.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use ironroot_fleet::{Fleet, FleetError};
use ironroot_policy::{LintCode, MAX_DOCUMENT_BYTES, PolicyDocument, Severity, builtin, lint};
use ironroot_store::{PolicyTarget, Store};

use crate::cmd::device::{StoreArgs, cli_origin};

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
    /// Store a policy in the registry: version 1 for a new NAME, the next version otherwise.
    ///
    /// The document is validated first (size limit, actions, resources, variables); an
    /// invalid one is refused with the field and line at fault and nothing is stored. Lint
    /// findings are printed as warnings. The latest version is the one in force: running
    /// brokers apply it to live sessions within a second. Audited (policy.create).
    ///
    /// Example: ironroot policy create telemetry-reader --file reader.json
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Policy name: 1-128 letters, digits and _+=,.@-
        name: String,
        /// The policy document (AWS IoT Core JSON syntax).
        #[arg(long, value_name = "P.json")]
        file: PathBuf,
    },
    /// Attach a stored policy to one device or to every device of a group. Audited.
    ///
    /// Example: ironroot policy attach telemetry-reader --device backend-1
    Attach {
        #[command(flatten)]
        store: StoreArgs,
        /// Policy name.
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Detach a policy from a device or group. Audited.
    Detach {
        #[command(flatten)]
        store: StoreArgs,
        /// Policy name.
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List stored policies with their latest version and attachments.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a stored policy: versions, attachments and the document in force.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Policy name.
        name: String,
    },
    /// Print a built-in policy (a starting point for your own).
    ShowBuiltin {
        /// Which built-in policy.
        #[arg(value_enum)]
        which: Builtin,
    },
}

/// `--device ID` or `--group G`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// A registered device id.
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// A device group (created if it does not exist yet).
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> PolicyTarget {
        match (&self.device, &self.group) {
            (Some(d), _) => PolicyTarget::Device(d.clone()),
            (None, Some(g)) => PolicyTarget::Group(g.clone()),
            (None, None) => unreachable!("clap requires --device or --group"),
        }
    }
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
        PolicyCommand::Create { store, name, file } => {
            registry(store, move |f| Box::pin(create(f, name, file)))
        }
        PolicyCommand::Attach {
            store,
            name,
            target,
        } => registry(store, move |f| {
            Box::pin(attach(f, name, target.target(), true))
        }),
        PolicyCommand::Detach {
            store,
            name,
            target,
        } => registry(store, move |f| {
            Box::pin(attach(f, name, target.target(), false))
        }),
        PolicyCommand::List { store } => registry(store, |f| Box::pin(list(f.store().clone()))),
        PolicyCommand::Show { store, name } => {
            registry(store, move |f| Box::pin(show(f.store().clone(), name)))
        }
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

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>;

/// Opens the registry and the audit log of `args` as the fleet service, runs `job`, closes.
fn registry(args: StoreArgs, job: impl FnOnce(Fleet) -> Job) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let fleet = args.fleet(false).await?;
        let result = job(fleet.clone()).await;
        fleet.store().close().await;
        result.map(|()| ExitCode::SUCCESS)
    })
}

async fn create(fleet: Fleet, name: String, file: PathBuf) -> anyhow::Result<()> {
    let shown = file.display().to_string();
    let bytes = read_limited(&file).with_context(|| format!("cannot read {shown}"))?;
    let Ok(text) = String::from_utf8(bytes) else {
        anyhow::bail!("{shown}: a policy document must be UTF-8 JSON");
    };
    match fleet.put_policy(&cli_origin(), &name, &text).await {
        Ok(v) => {
            println!("stored policy {name} version {}", v.version);
            if let Ok(doc) = PolicyDocument::parse(&text) {
                for f in lint(&doc) {
                    println!("  {}[{}]: {}", f.severity, f.code, f.message);
                }
            }
            Ok(())
        }
        Err(FleetError::Refused(e)) => anyhow::bail!("{shown}: {e}"),
        Err(e) => Err(anyhow::Error::new(e).context("cannot store the policy")),
    }
}

async fn attach(
    fleet: Fleet,
    name: String,
    target: PolicyTarget,
    attach: bool,
) -> anyhow::Result<()> {
    let origin = cli_origin();
    let (verb, result) = if attach {
        ("attach", fleet.attach_policy(&origin, &name, &target).await)
    } else {
        ("detach", fleet.detach_policy(&origin, &name, &target).await)
    };
    let changed = result.with_context(|| format!("cannot {verb} policy {name}"))?;
    match (attach, changed) {
        (true, true) => println!("attached policy {name} to {target}"),
        (true, false) => println!("policy {name} was already attached to {target}"),
        (false, true) => println!("detached policy {name} from {target}"),
        (false, false) => println!("policy {name} was not attached to {target}"),
    }
    Ok(())
}

fn targets(p: &ironroot_store::Policy) -> String {
    if p.attachments.is_empty() {
        return "(not attached)".into();
    }
    p.attachments
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn list(store: Store) -> anyhow::Result<()> {
    let policies = store.list_policies().await?;
    if policies.is_empty() {
        println!("no policies stored (every device has the built-in default device policy)");
    }
    for p in policies {
        println!("{}  v{}  {}", p.latest.name, p.latest.version, targets(&p));
    }
    Ok(())
}

async fn show(store: Store, name: String) -> anyhow::Result<()> {
    let p = store.policy(&name).await?;
    println!("policy:      {}", p.latest.name);
    println!(
        "versions:    {} (in force: v{})",
        p.versions
            .iter()
            .map(|v| format!("v{v}"))
            .collect::<Vec<_>>()
            .join(" "),
        p.latest.version
    );
    println!("attached to: {}", targets(&p));
    println!("{}", p.latest.document);
    Ok(())
}

/// Reads at most one byte more than a policy may have, so a huge file is not loaded.
fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}
