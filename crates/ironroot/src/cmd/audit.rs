//! `ironroot audit …`: verify the tamper-evident audit log, read it, and hand out proofs that a
//! third party checks without access to the server.
//!
//! The entries live in the registry database (the data directory's SQLite file, or PostgreSQL
//! with --database-url); the signing key, its public verifier key and the witness checkpoint in
//! `<data-dir>/audit/`.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use ironroot_audit::{
    Audit, AuditDir, BundleError, Event, EventFilter, EventKind, LogReader, LogStorage,
    NoteVerifier, Outcome, ProofBundle, SqlStorage, Timestamp, TypeFilter, VerifyError,
    VerifyOptions, entry_json, verify_log,
};
use ironroot_store::Store;

use crate::cmd::device::StoreArgs;

/// Exit status when the log is tampered with or a proof does not verify (1 is any other
/// failure, such as an unreachable database).
const EXIT_TAMPERED: u8 = 3;

/// Verify and read the tamper-evident audit log; prove entries to third parties.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the whole log: recompute every hash, check every signed checkpoint and the
    /// consistency of each with the previous one, and compare with the witness checkpoint kept
    /// outside the database (rollback to an older copy).
    ///
    /// Exit status: 0 when the log is intact; 3 when it was tampered with (the first tampered
    /// entry is named); 1 when it could not be checked.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// The log's verifier key (from `ironroot audit key`, kept somewhere safe). Default:
        /// <data-dir>/audit/checkpoint.pub, which an attacker of this machine could replace.
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: Option<String>,
        /// A checkpoint you kept elsewhere (a copy of an earlier witness file or of a proof's
        /// checkpoint); the log must still contain it. Repeatable.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
    },
    /// Print entries, oldest first (this reads; it does not verify: use `audit verify`).
    ///
    /// Example: ironroot audit show --device sensor-0001 --since 24h
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Only entries about this device (as subject, actor or `device` detail).
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// Only entries at or after this time: RFC 3339 (2024-05-01T12:00:00Z, 2024-05-01) or
        /// an age such as 30m, 24h, 7d.
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<Timestamp>,
        /// Only entries of this event type (cert.issued), or of this area (cert); an unknown
        /// name is refused with the list of valid ones (docs/audit-events.md).
        #[arg(long = "type", visible_alias = "event", value_name = "TYPE", value_parser = parse_type_filter)]
        event_type: Option<TypeFilter>,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a proof that entry N is in the log: the entry, its audit path and the latest
    /// signed checkpoint. Anyone holding the log's verifier key checks it with
    /// `ironroot audit check-proof`, without access to this server.
    Prove {
        #[command(flatten)]
        store: StoreArgs,
        /// Entry number (as printed by `audit show`).
        index: u64,
        /// Write the proof to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a proof printed by `ironroot audit prove` (no data directory needed).
    ///
    /// Exit status: 0 when the proof is valid; 3 when it is not; 1 on other errors.
    CheckProof {
        /// The log's verifier key string, or a file holding it.
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: String,
        /// The proof file (`-` for standard input).
        file: PathBuf,
    },
    /// Print the log's verifier key: give it to auditors and keep a copy away from this
    /// machine; `audit verify --key` and `audit check-proof --key` take it.
    Key {
        /// Data directory holding audit/checkpoint.pub.
        #[arg(
            long,
            env = "IRONROOT_DATA_DIR",
            default_value = "./ironroot-data",
            value_name = "DIR"
        )]
        data_dir: PathBuf,
    },
    /// Record an operator action or note in the log (the server records its own events).
    ///
    /// Example: ironroot audit record --type operator.note --actor operator:alice
    ///   --subject device:sensor-0001 --detail ticket=OPS-42
    Record {
        #[command(flatten)]
        store: StoreArgs,
        /// Event type, one of the kinds in docs/audit-events.md (operator.note).
        #[arg(long = "type", value_name = "TYPE", value_parser = parse_kind)]
        event_type: EventKind,
        /// Who acted (operator:alice).
        #[arg(long)]
        actor: String,
        /// What was acted upon, KIND:ID (device:sensor-0001).
        #[arg(long, value_name = "KIND:ID", value_parser = parse_subject)]
        subject: Option<(String, String)>,
        /// success, failure or denied.
        #[arg(long, default_value = "success", value_parser = parse_outcome)]
        outcome: Outcome,
        /// A detail, KEY=VALUE (repeatable). Never put a secret in the log.
        #[arg(long = "detail", value_name = "KEY=VALUE", value_parser = parse_detail)]
        details: Vec<(String, String)>,
    },
}

/// Runs `ironroot audit …`.
pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            AuditCommand::Verify {
                store,
                key,
                checkpoints,
            } => verify(&store, key.as_deref(), &checkpoints).await,
            AuditCommand::Show {
                store,
                device,
                since,
                event_type,
                json,
            } => {
                let filter = EventFilter {
                    device,
                    since,
                    event_type,
                };
                show(&store, &filter, json)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
            AuditCommand::Prove { store, index, out } => prove(&store, index, out.as_deref())
                .await
                .map(|()| ExitCode::SUCCESS),
            AuditCommand::CheckProof { key, file } => check_proof(&key, &file),
            AuditCommand::Key { data_dir } => {
                let verifier = AuditDir::new(&data_dir)
                    .load_verifier()
                    .context("cannot read the audit verifier key")?;
                println!("{verifier}");
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Record {
                store,
                event_type,
                actor,
                subject,
                outcome,
                details,
            } => {
                let mut event = Event::new(event_type, actor).source("cli").outcome(outcome);
                if let Some((kind, id)) = subject {
                    event = event.subject(kind, id);
                }
                for (k, v) in details {
                    event = event.detail(k, v);
                }
                record(&store, event).await.map(|()| ExitCode::SUCCESS)
            }
        }
    })
}

/// Opens the registry database, which must exist (reading commands create nothing).
async fn open_existing(args: &StoreArgs) -> anyhow::Result<Store> {
    if args.database_url.is_none() {
        let db = args.data_dir.join(ironroot_store::DATABASE_FILE);
        if !db.exists() {
            bail!(
                "no ironroot database at {} (pass --data-dir or --database-url)",
                db.display()
            );
        }
    }
    args.open(false).await
}

/// Prints "error: …" and returns the exit status for tampering.
fn tampered(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_TAMPERED)
}

async fn verify(
    args: &StoreArgs,
    key: Option<&str>,
    checkpoints: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let store = open_existing(args).await?;
    let dir = AuditDir::new(&args.data_dir);
    let (verifier, key_source) = match key {
        Some(k) => (parse_key(k)?, "given with --key".to_owned()),
        None => (
            dir.load_verifier()
                .context("cannot read the audit verifier key (or pass --key)")?,
            format!(
                "{} (compare it with a copy kept elsewhere)",
                dir.verifier_path().display()
            ),
        ),
    };
    let mut external = Vec::new();
    for path in checkpoints {
        external.push(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read checkpoint {}", path.display()))?,
        );
    }
    let witness = dir.witness();
    let witness_note = witness
        .read()
        .await
        .context("cannot read the witness checkpoint")?;
    if let Some(note) = &witness_note {
        external.push(note.clone());
    }
    let storage = Arc::new(SqlStorage::new(store.clone()));
    let options = VerifyOptions {
        external_checkpoints: external,
        ..VerifyOptions::default()
    };
    let result = verify_log(storage, &verifier, &options).await;
    store.close().await;
    let verified = match result {
        Ok(v) => v,
        Err(VerifyError::Tampered(t)) => {
            return Ok(tampered(format_args!("audit log tampered: {t}")));
        }
        Err(e) => return Err(e).context("cannot verify the audit log"),
    };
    let mut out = String::new();
    use std::fmt::Write as _;
    if verified.size == 0 {
        writeln!(out, "audit log intact: empty")?;
    } else {
        writeln!(
            out,
            "audit log intact: {} entries, {} signed checkpoints, each consistent with the previous one",
            verified.size, verified.checkpoints
        )?;
    }
    writeln!(out, "  log:      {}", verifier.name())?;
    writeln!(
        out,
        "  root:     {} (size {})",
        verified.root.to_base64(),
        verified.size
    )?;
    match (&witness_note, verified.external_size) {
        (Some(_), Some(size)) => writeln!(out, "  witness:  matches the log at size {size}")?,
        (Some(_), None) => writeln!(out, "  witness:  matches (empty log)")?,
        (None, _) => writeln!(
            out,
            "  witness:  none at {}: a restored older copy of the database would go unnoticed",
            witness.path().display()
        )?,
    }
    if !checkpoints.is_empty() {
        writeln!(
            out,
            "  kept checkpoints: {} found in the log",
            checkpoints.len()
        )?;
    }
    writeln!(out, "  key:      {key_source}")?;
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

async fn show(args: &StoreArgs, filter: &EventFilter, json: bool) -> anyhow::Result<()> {
    let store = open_existing(args).await?;
    let storage = SqlStorage::new(store.clone());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut next = 0u64;
    let mut shown = 0u64;
    loop {
        let page = storage
            .read_leaves(next, u64::MAX, 1000)
            .await
            .context("cannot read the audit log")?;
        let Some(last) = page.last() else { break };
        next = last.index + 1;
        for leaf in page {
            let line = match Event::decode(&leaf.data) {
                Ok(e) if !filter.matches(&e) => continue,
                Ok(e) if json => entry_json(leaf.index, &e, &leaf.data).to_string(),
                Ok(e) => text_line(leaf.index, &e),
                // Never hide a broken entry, whatever the filter.
                Err(err) => format!(
                    "#{} <undecodable entry: {err}; run `ironroot audit verify`>",
                    leaf.index
                ),
            };
            shown += 1;
            if let Err(e) = writeln!(out, "{line}") {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(()); // `| head`: the reader has seen enough
                }
                return Err(e).context("cannot write to standard output");
            }
        }
    }
    if shown == 0 && !json {
        writeln!(out, "no matching entries")?;
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    store.close().await;
    Ok(())
}

fn text_line(index: u64, e: &Event) -> String {
    let mut line = format!(
        "#{index} {} {} {} actor={}",
        e.time,
        e.outcome.as_str(),
        e.event_type,
        e.actor
    );
    if !e.subject.kind.is_empty() || !e.subject.id.is_empty() {
        line.push_str(&format!(" subject={}:{}", e.subject.kind, e.subject.id));
    }
    if !e.source.is_empty() {
        line.push_str(&format!(" source={}", e.source));
    }
    for (k, v) in &e.details {
        line.push_str(&format!(" {k}={v:?}"));
    }
    // Control characters in stored strings must not reach the terminal as such.
    line.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

async fn prove(args: &StoreArgs, index: u64, out: Option<&Path>) -> anyhow::Result<()> {
    let store = open_existing(args).await?;
    let storage = Arc::new(SqlStorage::new(store.clone()));
    let Some(checkpoint) = storage
        .latest_checkpoint()
        .await
        .context("cannot read the audit log")?
    else {
        bail!("the audit log is empty: there is nothing to prove");
    };
    if index >= checkpoint.size {
        bail!(
            "entry {index} is not in the log (it has {} entries)",
            checkpoint.size
        );
    }
    let bundle = LogReader::new(storage)
        .proof_bundle(index, &checkpoint)
        .await
        .with_context(|| format!("cannot build the proof of entry {index}"))?;
    store.close().await;
    // Never hand out a proof that does not verify (a damaged database would produce one).
    let verifier = AuditDir::new(&args.data_dir)
        .load_verifier()
        .context("cannot read the audit verifier key")?;
    bundle.verify(&verifier).with_context(|| {
        format!("the proof of entry {index} does not verify: run `ironroot audit verify`")
    })?;
    let text = bundle.to_text();
    match out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

fn check_proof(key: &str, file: &Path) -> anyhow::Result<ExitCode> {
    let verifier = parse_key(key)?;
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("cannot read the proof from standard input")?;
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(1 << 20).read_to_string(&mut text))
            .with_context(|| format!("cannot read proof {}", file.display()))?;
    }
    let verified = match ProofBundle::parse(&text).and_then(|b| b.verify(&verifier)) {
        Ok(v) => v,
        Err(e @ BundleError::Malformed(_)) => {
            return Ok(tampered(format_args!(
                "{} is not a valid proof: {e}",
                file.display()
            )));
        }
        Err(e) => return Ok(tampered(format_args!("proof does not verify: {e}"))),
    };
    let cp = &verified.checkpoint.checkpoint;
    let e = &verified.event;
    println!(
        "proof valid: entry {} is in log {} at size {} (root {})",
        verified.index,
        cp.origin,
        cp.size,
        cp.root.to_base64()
    );
    println!("{}", text_line(verified.index, e));
    Ok(ExitCode::SUCCESS)
}

async fn record(args: &StoreArgs, event: Event) -> anyhow::Result<()> {
    let store = args.open(true).await?;
    let audit = Audit::open_store(&store, &args.data_dir)
        .await
        .context("cannot open the audit log")?;
    let receipt = audit
        .record(event)
        .await
        .context("cannot record the event")?;
    drop(audit);
    store.close().await;
    println!(
        "recorded entry {} (log {} now has {} entries)",
        receipt.index, receipt.checkpoint.origin, receipt.checkpoint.size
    );
    Ok(())
}

/// A verifier key string, or the path of a file holding one.
fn parse_key(key: &str) -> anyhow::Result<NoteVerifier> {
    if let Ok(v) = NoteVerifier::parse(key.trim()) {
        return Ok(v);
    }
    let path = Path::new(key);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?;
        return NoteVerifier::parse(text.trim())
            .with_context(|| format!("{} does not hold a verifier key", path.display()));
    }
    NoteVerifier::parse(key.trim()).context(
        "--key is neither a verifier key (NAME+HASH+KEY, from `ironroot audit key`) nor a file",
    )
}

fn parse_since(text: &str) -> Result<Timestamp, String> {
    let units = [('s', 1i64), ('m', 60), ('h', 3600), ('d', 86_400)];
    if let Some((_, scale)) = units.iter().find(|(u, _)| text.ends_with(*u))
        && let Ok(n) = text[..text.len() - 1].parse::<i64>()
        && n >= 0
    {
        let now = Timestamp::now();
        let secs = n
            .checked_mul(*scale)
            .and_then(|ago| now.secs().checked_sub(ago))
            .ok_or("the age is too large")?;
        return Timestamp::new(secs, now.nanos()).map_err(|e| e.to_string());
    }
    Timestamp::parse_rfc3339(text).map_err(|_| {
        format!("expected an RFC 3339 time (2024-05-01T12:00:00Z) or an age (30m, 24h, 7d), got {text:?}")
    })
}

/// A known event kind (`audit record --type`): this build records only kinds it documents.
fn parse_kind(text: &str) -> Result<EventKind, String> {
    EventKind::from_name(text).ok_or_else(|| {
        format!(
            "unknown event type {text:?}; expected one of: {}",
            EventKind::names()
        )
    })
}

fn parse_type_filter(text: &str) -> Result<TypeFilter, String> {
    TypeFilter::parse(text)
}

fn parse_subject(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
            Ok((kind.to_owned(), id.to_owned()))
        }
        _ => Err(format!(
            "expected KIND:ID (device:sensor-0001), got {text:?}"
        )),
    }
}

fn parse_outcome(text: &str) -> Result<Outcome, String> {
    match text {
        "success" => Ok(Outcome::Success),
        "failure" => Ok(Outcome::Failure),
        "denied" => Ok(Outcome::Denied),
        _ => Err(format!("expected success, failure or denied, got {text:?}")),
    }
}

fn parse_detail(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests;
