//! `ironroot check tls HOST:PORT`: grades a TLS listener (ironroot's own or any server) with
//! ironroot-tlscheck and exits non-zero when a check fails, so CI can gate on it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use ironroot_tlscheck::{ClientIdentity, Options, Status};

/// Checks of running services.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(subcommand)]
    command: CheckCommand,
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Grade a TLS server: protocol versions, cipher suites, key-exchange groups, certificate
    /// chain and lifetime, client-certificate requirement, compression and renegotiation.
    ///
    /// It sends hand-built ClientHello messages to see what the server *accepts* (including
    /// SSLv3, TLS 1.0/1.1, CBC and static-RSA suites, weak groups), then completes one real
    /// handshake to read the certificate chain. The server's certificate is examined, not
    /// trusted: this is a configuration check, not authentication.
    ///
    /// Exit status: 0 when no check fails (warnings allowed), 1 when any check fails or the
    /// server cannot be reached.
    ///
    /// Examples:
    ///   ironroot check tls 127.0.0.1:8443
    ///   ironroot check tls 127.0.0.1:8883 --cert dev.crt --key dev.key   (mutual-TLS MQTT)
    ///   ironroot check tls example.org:443 --json > tls.json
    #[command(verbatim_doc_comment)]
    Tls(TlsArgs),
}

#[derive(Debug, Args)]
struct TlsArgs {
    /// The server, as HOST:PORT (e.g. 127.0.0.1:8443, [::1]:8883, example.org:443).
    target: String,
    /// Name sent in SNI; defaults to HOST (IP literals send no SNI).
    #[arg(long)]
    servername: Option<String>,
    /// Seconds to wait for each connection and answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// PEM client certificate (chain) to present when the server asks (with --key).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Print the report as JSON (fields: target, address, grade, protocols, cipher_suites,
    /// groups, client_certificate, certificate_chain, checks[{id, status, detail}]).
    #[arg(long)]
    json: bool,
}

/// Runs `ironroot check …`.
pub fn run(args: CheckArgs) -> Result<ExitCode> {
    match args.command {
        CheckCommand::Tls(a) => tls(a),
    }
}

fn tls(a: TlsArgs) -> Result<ExitCode> {
    let mut options = Options::new(a.target.clone());
    options.server_name = a.servername;
    options.timeout = Duration::from_secs(a.timeout.max(1));
    if let (Some(cert), Some(key)) = (&a.cert, &a.key) {
        options.identity = Some(ClientIdentity::from_pem_files(cert, key)?);
    }
    let report = ironroot_tlscheck::check(&options)
        .with_context(|| format!("checking TLS of {}", a.target))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("TLS check of {} ({})", report.target, report.address);
        println!("  protocols       {}", report.protocols.join(", "));
        println!("  groups          {}", report.groups.join(", "));
        for s in &report.cipher_suites {
            println!("  suite           {} {}", s.protocol, s.name);
        }
        for subject in &report.certificate_chain {
            println!("  certificate     {subject}");
        }
        println!();
        for c in &report.checks {
            let mark = match c.status {
                Status::Pass => "pass",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("  {mark}  {:<26} {}", c.id, c.detail);
        }
        println!();
        println!("grade {:?}", report.grade);
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
