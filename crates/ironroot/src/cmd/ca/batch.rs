//! `ironroot ca issue --csr-dir DIR --out-dir DIR` (with `--factory`: factory credentials): a
//! factory batch. The CA key is unlocked once; every CSR goes through the identity service
//! exactly as a single `ca issue` does (registry record, audit entry), many at a time; a JSON
//! summary goes to stdout.

use std::fs;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ironroot_identity::{BATCH_CONCURRENCY, IdentityOptions, IssueRequest};
use ironroot_pki::DeviceId;

use super::issue::open_identity;
use super::{CLI_ACTOR, IssueArgs};

/// One CSR that produced no certificate.
#[derive(Debug, serde::Serialize)]
struct Failure {
    file: String,
    error: String,
}

/// What the batch prints on stdout.
#[derive(Debug, serde::Serialize)]
struct Summary {
    issued: usize,
    failed: usize,
    failures: Vec<Failure>,
    seconds: f64,
    per_second: f64,
}

/// The CSR files of `dir` (`*.csr`, `*.pem`), sorted by name, with the device id each names.
fn csr_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let is_csr = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("csr" | "pem")
        );
        if !is_csr || !path.is_file() {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let stem = stem.to_owned();
        files.push((path, stem));
    }
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs the batch; `Err` after the summary is printed when any CSR failed.
pub(super) async fn issue_dir(a: &IssueArgs, csr_dir: &Path, out_dir: &Path) -> Result<()> {
    let start = Instant::now();
    let files = csr_files(csr_dir)?;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut failures = Vec::new();
    let mut requests = Vec::with_capacity(files.len());
    let mut names = Vec::with_capacity(files.len());
    for (path, stem) in &files {
        let prepared = DeviceId::parse(stem)
            .with_context(|| format!("the file name {stem:?} is not a device id"))
            .and_then(|device| {
                let csr = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                Ok((device, csr))
            });
        match prepared {
            Ok((device, csr)) => {
                names.push((file_name(path), stem.clone()));
                requests.push(IssueRequest {
                    device,
                    csr,
                    actor: CLI_ACTOR.to_owned(),
                    source: None,
                    purpose: a.purpose(),
                });
            }
            Err(e) => failures.push(Failure {
                file: file_name(path),
                error: format!("{e:#}"),
            }),
        }
    }
    // One unlock (argon2id or token login) for the whole batch.
    let service = open_identity(
        &a.store,
        &a.online,
        IdentityOptions::new(&a.store.data_dir),
        false,
    )
    .await?;
    let bar = progress_bar(requests.len());
    let results = service
        .issue_batch(requests, BATCH_CONCURRENCY, |done| {
            if let Some(bar) = &bar {
                bar.set_position(done as u64);
            }
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    service.store().close().await;
    let mut issued = 0;
    // Recorded and audited: only now do the certificates leave the process.
    for ((file, stem), result) in names.into_iter().zip(results) {
        match result {
            Ok(cert) => {
                let out = out_dir.join(format!("{stem}.crt.pem"));
                fs::write(&out, cert.pem())
                    .with_context(|| format!("writing {}", out.display()))?;
                issued += 1;
            }
            Err(e) => failures.push(Failure {
                file,
                error: e.to_string(),
            }),
        }
    }
    let chain = out_dir.join("chain.pem");
    let chain_pem = if a.factory {
        service.factory_chain_pem()
    } else {
        service.chain_pem()
    };
    fs::write(&chain, chain_pem).with_context(|| format!("writing {}", chain.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let summary = Summary {
        issued,
        failed: failures.len(),
        failures,
        seconds,
        per_second: if seconds > 0.0 {
            issued as f64 / seconds
        } else {
            0.0
        },
    };
    println!("{}", serde_json::to_string(&summary)?);
    if summary.failed > 0 {
        bail!(
            "{} of {} CSR(s) failed (see \"failures\" above)",
            summary.failed,
            summary.failed + summary.issued
        );
    }
    Ok(())
}

/// A progress bar on stderr when it is a terminal; none otherwise (logs, pipes, tests).
fn progress_bar(total: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} certificates, {per_sec}, eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
