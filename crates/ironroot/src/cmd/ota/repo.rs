//! `ironroot ota repo`: create and sign a TUF repository directory (serve `DIR/metadata/`
//! and `DIR/targets/` over HTTP).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use ironroot_tuf::repo::{Repository, RoleSetup, Written};
use ironroot_tuf::{KeyFileSigner, Pkcs11Signer, Signer};
use serde_json::{Value, json};

/// TUF repository tooling.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create version 1 of root, targets, snapshot and timestamp.
    Init(InitArgs),
    /// Add (or replace) a target with custom fields; signs new targets, snapshot and timestamp.
    #[command(disable_version_flag = true)]
    AddTarget(AddTargetArgs),
    /// Re-sign the timestamp (new version, new expiry), e.g. from a cron job.
    Timestamp(TimestampArgs),
    /// Root N -> N+1 with new root keys, signed by the old and the new root keys.
    RotateRoot(RotateArgs),
}

#[derive(Debug, Args)]
pub struct Expiry {
    /// Validity of the metadata written, from now (default per role: root 365d, targets 90d,
    /// snapshot 7d, timestamp 1d).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    expires: Option<Duration>,
    /// Absolute expiry (YYYY-MM-DDTHH:MM:SSZ) instead of --expires; may be in the past.
    #[arg(long, value_name = "TIME", conflicts_with = "expires")]
    expires_at: Option<String>,
}

impl Expiry {
    fn at(&self, default_days: u64) -> Result<u64> {
        if let Some(t) = &self.expires_at {
            return ironroot_tuf::parse_expires(t)
                .ok_or_else(|| anyhow!("--expires-at {t:?} is not YYYY-MM-DDTHH:MM:SSZ"));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let d = self.expires.map_or(default_days * 86_400, |d| d.as_secs());
        Ok(now + d)
    }
}

/// A targets key on a PKCS#11 token (ECDSA P-256), e.g. in an HSM.
#[derive(Debug, Args)]
pub struct Pkcs11Opts {
    /// PKCS#11 module holding the targets key (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, value_name = "MODULE", requires_all = ["pkcs11_token", "targets_pkcs11_key"])]
    pkcs11_module: Option<PathBuf>,
    /// Label of the token.
    #[arg(long, value_name = "LABEL", requires = "pkcs11_module")]
    pkcs11_token: Option<String>,
    /// Label of the P-256 targets key on the token (signs alongside any --targets-key).
    #[arg(long, value_name = "LABEL", requires = "pkcs11_module")]
    targets_pkcs11_key: Option<String>,
    /// File with the token PIN (else IRONROOT_PKCS11_PIN).
    #[arg(long, value_name = "FILE", requires = "pkcs11_module")]
    pkcs11_pin_file: Option<PathBuf>,
}

impl Pkcs11Opts {
    fn open(&self) -> Result<Option<Pkcs11Signer>> {
        let Some(module) = &self.pkcs11_module else {
            return Ok(None);
        };
        let pin = match &self.pkcs11_pin_file {
            Some(f) => ironroot_pkcs11::Pin::from_file(f)
                .with_context(|| format!("reading {}", f.display()))?,
            None => {
                ironroot_pkcs11::Pin::new(std::env::var("IRONROOT_PKCS11_PIN").map_err(|_| {
                    anyhow!(
                        "the token PIN is needed: give --pkcs11-pin-file or set IRONROOT_PKCS11_PIN"
                    )
                })?)
            }
        };
        let token_label = self.pkcs11_token.as_deref().unwrap_or_default();
        let key_label = self.targets_pkcs11_key.as_deref().unwrap_or_default();
        let token = ironroot_pkcs11::Token::open(module, token_label, &pin)
            .with_context(|| format!("opening token '{token_label}'"))?;
        let pair = token
            .open_key(key_label)
            .with_context(|| format!("opening key '{key_label}' on token '{token_label}'"))?;
        Ok(Some(Pkcs11Signer::new(pair)?))
    }
}

/// File signers plus an optional token signer, as one list.
fn with_token<'a>(
    files: &'a [KeyFileSigner],
    token: &'a Option<Pkcs11Signer>,
) -> Vec<&'a dyn Signer> {
    let mut v = refs(files);
    if let Some(t) = token {
        v.push(t);
    }
    v
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Repository directory (created).
    #[arg(long)]
    dir: PathBuf,
    /// Root key file (PKCS#8 PEM, Ed25519 or P-256). Repeat for several keys.
    #[arg(long = "root-key", required = true)]
    root: Vec<PathBuf>,
    /// Targets key file. Repeat for several keys.
    #[arg(long = "targets-key", required_unless_present = "pkcs11_module")]
    targets: Vec<PathBuf>,
    /// Snapshot key file.
    #[arg(long = "snapshot-key", required = true)]
    snapshot: Vec<PathBuf>,
    /// Timestamp key file.
    #[arg(long = "timestamp-key", required = true)]
    timestamp: Vec<PathBuf>,
    /// Root signature threshold.
    #[arg(long, default_value_t = 1)]
    root_threshold: u64,
    /// Targets signature threshold.
    #[arg(long, default_value_t = 1)]
    targets_threshold: u64,
    /// Snapshot signature threshold.
    #[arg(long, default_value_t = 1)]
    snapshot_threshold: u64,
    /// Timestamp signature threshold.
    #[arg(long, default_value_t = 1)]
    timestamp_threshold: u64,
    /// Publish versioned metadata and hash-prefixed targets names (consistent snapshots).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    consistent_snapshot: bool,
    #[command(flatten)]
    pkcs11: Pkcs11Opts,
    #[command(flatten)]
    expiry: Expiry,
}

#[derive(Debug, Args)]
pub struct AddTargetArgs {
    /// Repository directory.
    #[arg(long)]
    dir: PathBuf,
    /// The file to publish.
    #[arg(long)]
    file: PathBuf,
    /// Target name (default: the file name).
    #[arg(long)]
    name: Option<String>,
    /// `custom.version` (e.g. the image version 1.2.0).
    #[arg(long)]
    version: Option<String>,
    /// `custom.security_counter`.
    #[arg(long)]
    security_counter: Option<u64>,
    /// `custom.hardware_class`.
    #[arg(long)]
    hardware_class: Option<String>,
    /// More custom fields, a JSON object merged into `custom`.
    #[arg(long, value_name = "JSON")]
    custom: Option<String>,
    /// Targets key file(s) signing the new targets metadata.
    #[arg(long = "targets-key", required_unless_present = "pkcs11_module")]
    targets: Vec<PathBuf>,
    /// Snapshot key file(s).
    #[arg(long = "snapshot-key", required = true)]
    snapshot: Vec<PathBuf>,
    /// Timestamp key file(s).
    #[arg(long = "timestamp-key", required = true)]
    timestamp: Vec<PathBuf>,
    #[command(flatten)]
    pkcs11: Pkcs11Opts,
    #[command(flatten)]
    expiry: Expiry,
}

#[derive(Debug, Args)]
pub struct TimestampArgs {
    /// Repository directory.
    #[arg(long)]
    dir: PathBuf,
    /// Timestamp key file(s).
    #[arg(long = "timestamp-key", required = true)]
    timestamp: Vec<PathBuf>,
    #[command(flatten)]
    expiry: Expiry,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Repository directory.
    #[arg(long)]
    dir: PathBuf,
    /// Key file(s) of the current root role (the threshold of them must sign).
    #[arg(long = "old-root-key")]
    old: Vec<PathBuf>,
    /// Key file(s) of the new root role; all of them sign.
    #[arg(long = "new-root-key", required = true)]
    new: Vec<PathBuf>,
    /// Threshold of the new root role.
    #[arg(long, default_value_t = 1)]
    threshold: u64,
    #[command(flatten)]
    expiry: Expiry,
}

fn signers(paths: &[PathBuf]) -> Result<Vec<KeyFileSigner>> {
    paths
        .iter()
        .map(|p| KeyFileSigner::load(p).with_context(|| format!("loading key {}", p.display())))
        .collect()
}

fn refs(s: &[KeyFileSigner]) -> Vec<&dyn Signer> {
    s.iter().map(|s| s as &dyn Signer).collect()
}

fn setup(s: &[KeyFileSigner], threshold: u64) -> RoleSetup<'_> {
    RoleSetup {
        signers: refs(s),
        extra_keys: Vec::new(),
        threshold,
    }
}

fn report(w: &Written) {
    for f in &w.files {
        println!("wrote {f}");
    }
    for r in &w.below_threshold {
        eprintln!(
            "warning: {r} is signed below its threshold: clients refuse it until more keys sign"
        );
    }
}

/// Runs `ironroot ota repo ...`.
pub fn run(c: RepoCommand) -> Result<ExitCode> {
    match c {
        RepoCommand::Init(a) => {
            let keys = [&a.root, &a.targets, &a.snapshot, &a.timestamp].map(|p| signers(p));
            let [root, targets, snapshot, timestamp] = keys;
            let (root, targets, snapshot, timestamp) = (root?, targets?, snapshot?, timestamp?);
            let token = a.pkcs11.open()?;
            let targets_role = RoleSetup {
                signers: with_token(&targets, &token),
                extra_keys: Vec::new(),
                threshold: a.targets_threshold,
            };
            let roles = [
                &setup(&root, a.root_threshold),
                &targets_role,
                &setup(&snapshot, a.snapshot_threshold),
                &setup(&timestamp, a.timestamp_threshold),
            ];
            let expires = [
                a.expiry.at(365)?,
                a.expiry.at(90)?,
                a.expiry.at(7)?,
                a.expiry.at(1)?,
            ];
            let (_, w) = Repository::init(&a.dir, roles, a.consistent_snapshot, expires)?;
            report(&w);
        }
        RepoCommand::AddTarget(a) => {
            let repo = Repository::open(&a.dir)?;
            let content =
                std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
            let name = match &a.name {
                Some(n) => n.clone(),
                None => a
                    .file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| anyhow!("give --name"))?
                    .to_string(),
            };
            let mut custom = match &a.custom {
                Some(j) => serde_json::from_str::<Value>(j).context("--custom is not JSON")?,
                None => json!({}),
            };
            if !custom.is_object() {
                bail!("--custom must be a JSON object");
            }
            if let Some(v) = &a.version {
                custom["version"] = json!(v);
            }
            if let Some(n) = a.security_counter {
                custom["security_counter"] = json!(n);
            }
            if let Some(h) = &a.hardware_class {
                custom["hardware_class"] = json!(h);
            }
            let custom = (custom.as_object().is_some_and(|m| !m.is_empty())).then_some(custom);
            let (t, s, ts) = (
                signers(&a.targets)?,
                signers(&a.snapshot)?,
                signers(&a.timestamp)?,
            );
            let token = a.pkcs11.open()?;
            let t = with_token(&t, &token);
            let mut w = Written::default();
            repo.add_target(&name, &content, custom, &t, a.expiry.at(90)?, &mut w)?;
            repo.snapshot(&refs(&s), a.expiry.at(7)?, &mut w)?;
            repo.timestamp(&refs(&ts), a.expiry.at(1)?, &mut w)?;
            report(&w);
        }
        RepoCommand::Timestamp(a) => {
            let repo = Repository::open(&a.dir)?;
            let ts = signers(&a.timestamp)?;
            let mut w = Written::default();
            repo.timestamp(&refs(&ts), a.expiry.at(1)?, &mut w)?;
            report(&w);
        }
        RepoCommand::RotateRoot(a) => {
            let repo = Repository::open(&a.dir)?;
            let (old, new) = (signers(&a.old)?, signers(&a.new)?);
            let mut w = Written::default();
            repo.rotate_root(
                &setup(&new, a.threshold),
                &refs(&old),
                a.expiry.at(365)?,
                &mut w,
            )?;
            report(&w);
        }
    }
    Ok(ExitCode::SUCCESS)
}
