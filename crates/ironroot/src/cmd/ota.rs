//! `ironroot ota`: TUF 1.0 update metadata. `client` is a TUF client for outside checking
//! (python-tuf's conventions: init / refresh / download, metadata under unversioned names);
//! `repo` creates and signs a repository directory. Both are thin over `ironroot-tuf`.

mod client;
mod repo;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Signed OTA metadata (TUF 1.0): a verifying client and repository tooling.
#[derive(Debug, Args)]
#[command(
    after_help = "Quickstart (keys from `ironroot firmware keygen -t ed25519 -k K.pem`):\n  \
    ironroot ota repo init --dir repo --root-key root.pem --targets-key targets.pem \\\n    \
    --snapshot-key snapshot.pem --timestamp-key timestamp.pem\n  \
    ironroot ota repo add-target --dir repo --file app.bin --version 1.2.0 --security-counter 3 \\\n    \
    --hardware-class board-a --targets-key targets.pem --snapshot-key snapshot.pem --timestamp-key timestamp.pem\n  \
    (serve repo/ over HTTP, e.g. python3 -m http.server -d repo 8000)\n  \
    ironroot ota client --metadata-dir meta init repo/metadata/1.root.json\n  \
    ironroot ota client --metadata-url http://127.0.0.1:8000/metadata/ --metadata-dir meta refresh\n  \
    ironroot ota client --metadata-url http://127.0.0.1:8000/metadata/ --metadata-dir meta \\\n    \
    --target-name app.bin --target-dir out --target-base-url http://127.0.0.1:8000/targets/ download\n\n\
    The client exits 0 on success and 1 on any refused update (one line on stderr says why)."
)]
pub struct OtaArgs {
    #[command(subcommand)]
    command: OtaCommand,
}

#[derive(Debug, Subcommand)]
enum OtaCommand {
    /// TUF client: trust a root, refresh metadata from a mirror, download a verified target.
    Client(client::ClientArgs),
    /// TUF repository tooling: create, add targets, re-sign the timestamp, rotate the root.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
}

/// Runs `ironroot ota ...`.
pub fn run(args: OtaArgs) -> Result<ExitCode> {
    match args.command {
        OtaCommand::Client(a) => client::run(a),
        OtaCommand::Repo(c) => repo::run(c),
    }
}
