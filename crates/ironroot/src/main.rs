//! The `ironroot` command-line tool.
//!
//! Each subcommand group lives in its own module under `cmd/`; this file only wires them to clap.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};

/// ironroot: a chain of trust from a device's silicon to the cloud.
///
/// Sign and verify MCUboot-compatible firmware, simulate secure boot, run a CA for device
/// identities, and (soon) serve provisioning, mutual-TLS MQTT and signed updates from one binary.
#[derive(Debug, Parser)]
#[command(name = "ironroot", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign, verify, inspect and encrypt MCUboot firmware images (imgtool-compatible).
    Firmware(cmd::firmware::FirmwareArgs),
    /// Simulate a device with secure boot: OTP root of trust, boot ROM, bootloader, A/B slots.
    Boot(cmd::boot::BootArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Firmware(args) => cmd::firmware::run(args),
        Command::Boot(args) => cmd::boot::run(args),
    }
}
