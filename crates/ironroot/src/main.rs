//! The `ironroot` command-line tool.
//!
//! Each subcommand group lives in its own module under `cmd/`; this file only wires them to clap.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod cmd;

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
    /// Certificate authority: create it, rotate the intermediate, export chain and CRLs.
    #[command(subcommand)]
    Ca(cmd::ca::CaCommand),
    /// Check device policies (AWS IoT-style JSON) for errors and over-permissive grants.
    Policy(cmd::policy::PolicyArgs),
    /// Register, list and inspect devices in the registry.
    Device(cmd::device::DeviceArgs),
    /// Sign, verify, inspect and encrypt MCUboot firmware images (imgtool-compatible).
    Firmware(cmd::firmware::FirmwareArgs),
    /// Simulate a device with secure boot: OTP root of trust, boot ROM, bootloader, A/B slots.
    Boot(cmd::boot::BootArgs),
    /// Verify the tamper-evident audit log, show entries, and prove entries to third parties.
    Audit(cmd::audit::AuditArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ca(c) => cmd::ca::run(c).map(|()| std::process::ExitCode::SUCCESS),
        Command::Device(args) => cmd::device::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Firmware(args) => Ok(cmd::firmware::run(args)),
        Command::Boot(args) => Ok(cmd::boot::run(args)),
        Command::Policy(args) => cmd::policy::run(args),
        Command::Audit(args) => cmd::audit::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
