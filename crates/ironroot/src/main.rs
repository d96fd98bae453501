//! The `ironroot` command-line tool.
//!
//! Each subcommand group lives in its own module under `cmd/`; this file only wires them to clap.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod cmd;

/// ironroot: a chain of trust from a device's silicon to the cloud.
///
/// Sign and verify MCUboot-compatible firmware, simulate secure boot, run a CA for device
/// identities, and serve zero-touch provisioning (EST) and mutual-TLS MQTT with least-privilege
/// policies and live revocation, every step in a tamper-evident audit log — from one binary.
/// On the device side, `agent` runs a device with its key in a secure element (sealed software,
/// TPM 2.0, PKCS#11) and `simulate` runs a whole fleet, attacks included.
///
/// New here? `ironroot demo` runs the whole chain on this machine and prints each command.
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
    /// Check, store and attach device policies (AWS IoT-style JSON); lint for risky grants.
    Policy(cmd::policy::PolicyArgs),
    /// Devices: register, import, mint claim tokens, quarantine, release, revoke, decommission.
    Device(cmd::device::DeviceArgs),
    /// Incident response: contain devices (quarantine or revoke, live sessions cut) as one
    /// audited incident in one command; report it with audit proofs.
    Incident(cmd::incident::IncidentArgs),
    /// Sign, verify, inspect and encrypt MCUboot firmware images (imgtool-compatible).
    Firmware(cmd::firmware::FirmwareArgs),
    /// Simulate a device with secure boot: OTP root of trust, boot ROM, bootloader, A/B slots.
    Boot(cmd::boot::BootArgs),
    /// Verify the tamper-evident audit log, show entries, and prove entries to third parties.
    Audit(cmd::audit::AuditArgs),
    /// Run the mutual-TLS MQTT broker of a data directory (policies and revocations follow the registry).
    Mqtt(cmd::mqtt::MqttArgs),
    /// Run the whole chain of trust on this machine in one go, with embedded defaults.
    Demo(cmd::demo::DemoArgs),
    /// Run the server: HTTPS provisioning (EST, claim tokens), operator API and the mutual-TLS
    /// MQTT broker; creates the CA on first start.
    Up(Box<cmd::up::UpArgs>),
    /// Run this machine as a device: key in its element, EST enrollment, mutual-TLS MQTT,
    /// renewal, reconnect with backoff; resumes from its state directory.
    Agent(cmd::agent::AgentArgs),
    /// Run a fleet of virtual devices (own element key and certificate each) against a running
    /// server: enroll, connect, telemetry; a summary at the end (--json).
    Simulate(cmd::simulate::SimulateArgs),
    /// Signed OTA metadata (TUF 1.0): `ota client` verifies a repository (init, refresh,
    /// download); `ota repo` creates and signs one.
    Ota(cmd::ota::OtaArgs),
    /// Fleet defense: `defend audit` audits the fleet's configuration (certificates, CAs,
    /// policies, audit log, attestation) with severities and suppressions.
    Defend(cmd::defend::DefendArgs),
    /// Check running services: `check tls HOST:PORT` grades a TLS listener (CI gate).
    Check(cmd::check::CheckArgs),
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
        Command::Mqtt(args) => cmd::mqtt::run(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Up(args) => cmd::up::run(*args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Incident(args) => cmd::incident::run(args),
        Command::Defend(args) => cmd::defend::run(args),
        Command::Ota(args) => cmd::ota::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Agent(args) => cmd::agent::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
