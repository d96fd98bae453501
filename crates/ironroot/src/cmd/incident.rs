//! `ironroot incident …`: contain compromised devices in one command and report what was done.
//!
//! Through a running server's operator API when one is configured (`--server`, or
//! `<data-dir>/server.url`), else directly on the registry and audit log of the data directory
//! (or `--database-url`), through the same fleet service (`ironroot_fleet::Fleet::contain`).
//! Either way every broker following the registry cuts the devices' sessions within a second.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use ironroot_fleet::incident::{
    ContainAction, ContainRequest, Containment, DeviceQuery, IncidentReport, Targets,
};

use crate::cmd::device::{StoreArgs, cli_origin};
use crate::cmd::device_remote::{check, resolve};

/// Contain devices (quarantine or revoke, sessions cut) as one audited incident; report it.
#[derive(Debug, Args)]
pub struct IncidentArgs {
    #[command(subcommand)]
    command: IncidentCommand,
}

#[derive(Debug, Subcommand)]
enum IncidentCommand {
    /// Quarantine (default) or revoke devices in one registry transaction, cut their live MQTT
    /// sessions on every broker, and record one incident with its evidence in the audit log.
    /// Prints the incident id.
    ///
    /// Examples: ironroot incident contain --group line-7 --reason "beaconing" --evidence alarm-42
    ///           ironroot incident contain --query "attr.fw=1.2.0 state=active" --revoke
    Contain {
        #[command(flatten)]
        store: StoreArgs,
        /// A device to contain (repeatable).
        #[arg(long = "device", value_name = "ID", conflicts_with_all = ["group", "query"], required_unless_present_any = ["group", "query"])]
        devices: Vec<String>,
        /// Every member of this group.
        #[arg(long, value_name = "GROUP", conflicts_with = "query")]
        group: Option<String>,
        /// Every device matching all terms: space-separated key=value with keys group, state,
        /// owner, id (exact, or a prefix ending in *), attr.<name>.
        #[arg(long, value_name = "QUERY")]
        query: Option<String>,
        /// Revoke the devices and all their certificates (reason keyCompromise) instead of
        /// quarantining them (quarantined devices may reconnect, to their status topic only).
        #[arg(long)]
        revoke: bool,
        /// Why, for the record (kept in the audit log forever: never put a secret here).
        #[arg(long, default_value = "")]
        reason: String,
        /// An evidence reference kept with the incident: alarm id, ticket URL, file hash
        /// (repeatable).
        #[arg(long, value_name = "REF")]
        evidence: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an incident from the audit log: selection, reason, evidence, affected devices,
    /// revoked certificates, and its timeline; every entry's inclusion proof is verified
    /// (the JSON form carries the proofs, for `ironroot audit check-proof`).
    Report {
        #[command(flatten)]
        store: StoreArgs,
        /// The incident id printed by `incident contain` (inc-…).
        id: String,
        /// Print the full report with proofs as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `ironroot incident …`.
pub fn run(args: IncidentArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            IncidentCommand::Contain {
                store,
                devices,
                group,
                query,
                revoke,
                reason,
                evidence,
                json,
            } => {
                let action = if revoke {
                    ContainAction::Revoke
                } else {
                    ContainAction::Quarantine
                };
                let body = serde_json::json!({
                    "devices": (!devices.is_empty()).then_some(&devices),
                    "group": group,
                    "query": query,
                    "action": action.as_str(),
                    "reason": reason,
                    "evidence": evidence,
                });
                let done: Containment =
                    match remote_json(&store, "POST", "/api/v1/incidents", &body).await? {
                        Some(v) => serde_json::from_value(v)
                            .context("unexpected answer from the server")?,
                        None => {
                            let (targets, query_text) = match (group, query) {
                                (Some(g), _) => (Targets::Group(g), String::new()),
                                (None, Some(q)) => (Targets::Query(DeviceQuery::parse(&q)?), q),
                                (None, None) => (Targets::Devices(devices), String::new()),
                            };
                            let mut request = ContainRequest::new(targets, action);
                            request.query_text = query_text;
                            request.reason = reason;
                            request.evidence = evidence;
                            let fleet = store.fleet(false).await?;
                            fleet.contain(&cli_origin(), &request).await?
                        }
                    };
                if json {
                    println!("{}", serde_json::to_string_pretty(&done)?);
                } else {
                    print!("{}", contain_text(&done));
                }
                Ok(ExitCode::SUCCESS)
            }
            IncidentCommand::Report { store, id, json } => {
                let path = format!(
                    "/api/v1/incidents/{}",
                    id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
                );
                let report: IncidentReport =
                    match remote_json(&store, "GET", &path, &serde_json::Value::Null).await? {
                        Some(v) => serde_json::from_value(v)
                            .context("unexpected answer from the server")?,
                        None => store.fleet(false).await?.incident_report(&id).await?,
                    };
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", report_text(&report));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Largest answer accepted from the server: a report for `MAX_TARGETS` (100,000) devices.
const MAX_ANSWER: usize = 512 * 1024 * 1024;

/// Calls the server when one is configured; `None`: work offline.
async fn remote_json(
    store: &StoreArgs,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(remote) = resolve(store)? else {
        return Ok(None);
    };
    // A report carries a proof (about 1.6 KiB) per audit entry: 10,000 devices ≈ 20 MiB.
    let remote = remote.with_max_body(MAX_ANSWER);
    let raw = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body)?
    };
    let (status, answer) = match remote.call(method, path, "application/json", &raw).await {
        Ok(r) => r,
        Err(e) if remote.implicit && e.is_unreachable() => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("server {}", remote.url))),
    };
    check(status, &answer, "the server refused")?;
    match serde_json::from_slice(&answer) {
        Ok(v) => Ok(Some(v)),
        Err(_) => bail!(
            "the server {} answered something that is not JSON",
            remote.url
        ),
    }
}

fn contain_text(c: &Containment) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "incident {}: {} {} device(s) ({}), {} skipped, {} ms",
        c.incident,
        match c.action {
            ContainAction::Revoke => "revoked",
            _ => "quarantined",
        },
        c.contained.len(),
        c.target,
        c.skipped.len(),
        c.elapsed_ms
    );
    for s in c.skipped.iter().take(20) {
        let _ = writeln!(
            out,
            "  skipped {}: {}{}",
            s.device,
            s.reason,
            s.state
                .as_deref()
                .map(|st| format!(" (state {st})"))
                .unwrap_or_default()
        );
    }
    if c.skipped.len() > 20 {
        let _ = writeln!(
            out,
            "  … {} more skipped (--json lists all)",
            c.skipped.len() - 20
        );
    }
    let _ = writeln!(
        out,
        "live sessions are cut by every broker within a second; report: ironroot incident report {}",
        c.incident
    );
    out
}

fn report_text(r: &IncidentReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "incident {}  status: {}", r.incident, r.status);
    let _ = writeln!(out, "  opened:   {} by {}", r.opened_at, r.opened_by);
    let _ = writeln!(out, "  action:   {} ({})", r.action, r.target);
    if !r.reason.is_empty() {
        let _ = writeln!(out, "  reason:   {}", r.reason);
    }
    for e in &r.evidence {
        let _ = writeln!(out, "  evidence: {e}");
    }
    let _ = writeln!(out, "  devices:  {}", r.devices.len());
    for (d, state) in r.devices.iter().take(50) {
        let _ = writeln!(out, "    {d} → {state}");
    }
    if r.devices.len() > 50 {
        let _ = writeln!(
            out,
            "    … {} more (--json lists all)",
            r.devices.len() - 50
        );
    }
    let _ = writeln!(
        out,
        "  revoked certificates: {}",
        r.revoked_certificates.len()
    );
    let _ = writeln!(
        out,
        "  timeline: {} audit entries, every inclusion proof verified against the log key",
        r.timeline.len()
    );
    for e in r
        .timeline
        .iter()
        .filter(|e| e.kind.starts_with("incident."))
    {
        let _ = writeln!(out, "    #{} {} {} {}", e.index, e.time, e.kind, e.outcome);
    }
    // Stored strings must not reach the terminal as control characters.
    out.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}
