//! `ironroot simulate`: a fleet of virtual devices against a running server (thin wrapper over
//! `ironroot-sim`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ironroot_device::MqttTarget;
use ironroot_sim::{Progress, SimConfig};

/// Run N virtual devices in this process against a running `ironroot up`: each makes its own
/// key in its own (software) secure element, enrolls over EST with a group claim token,
/// connects over mutual-TLS MQTT and sends QoS 1 telemetry. Prints a summary (JSON with
/// --json: provisioned, connected, messages, failures, p50_ms, p99_ms, attacks). Exits non-zero
/// unless every device connected and every message was acknowledged (steps that failed and then
/// succeeded on retry are counted in `failures`), and every attack was refused and audited.
///
/// Example: `ironroot simulate --server https://127.0.0.1:8443 --data-dir ./ironroot-data --devices 200`
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// URL of the server's HTTPS API (EST and operator API), e.g. https://127.0.0.1:8443
    /// (default: <data-dir>/server.url).
    #[arg(long, env = "IRONROOT_SERVER", value_name = "URL")]
    server: Option<String>,
    /// How many devices.
    #[arg(long, default_value_t = 10, value_name = "N")]
    devices: usize,
    /// What the devices do: `baseline` (enroll, connect, telemetry) or `attacks` (the
    /// baseline, then cloned certificates, foreign topics, forged certificates, replayed claim
    /// tokens, foreign CSRs, reconnecting after revocation, wrongly signed and downgraded
    /// firmware, API authentication bypass and injection on every documented endpoint: each
    /// must be refused and audited; docs/security-testing.md maps them to the OWASP IoT Top 10).
    #[arg(long, value_enum, default_value_t = Scenario::Baseline)]
    scenario: Scenario,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Data directory of the server (admin token, CA chain, MQTT address defaults).
    #[arg(
        long,
        env = "IRONROOT_DATA_DIR",
        default_value = "./ironroot-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// File holding the operator token (default: <data-dir>/admin.token; or IRONROOT_ADMIN_TOKEN).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// CA chain the devices trust (default: <data-dir>/pki/chain.pem).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Broker address HOST:PORT (default: the address `ironroot up` wrote to <data-dir>/mqtt.addr).
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: Option<String>,
    /// Telemetry messages per device once connected.
    #[arg(long, default_value_t = 3, value_name = "N")]
    messages: u32,
    /// Pause between one device's messages.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    interval: Duration,
    /// Devices enrolling at the same time.
    #[arg(long, default_value_t = 32, value_name = "N")]
    concurrency: usize,
    /// Device id prefix, also the group the devices are registered in (default: sim-<random>).
    #[arg(long, value_name = "NAME")]
    prefix: Option<String>,
    /// Keep the whole fleet connected this long once every device is done (e.g. 60s, to
    /// measure memory of a standing fleet on both sides).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    hold: Duration,
    /// Skip secure boot: devices start straight at enrollment and send no boot report (for
    /// pure connection benchmarks). By default every device powers on through the simulated
    /// boot ROM and bootloader (ironroot-boot) and reports the decision once connected.
    #[arg(long)]
    no_secure_boot: bool,
    /// Longest a device may take from power-on to connected.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    connect_timeout: Duration,
}

/// Simulation scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Enroll, connect, stream telemetry.
    Baseline,
    /// The baseline, then the attacks.
    Attacks,
}

struct Bar(Option<indicatif::ProgressBar>);

impl Progress for Bar {
    fn devices_done(&self, done: usize, _total: usize) {
        if let Some(b) = &self.0 {
            b.set_position(done as u64);
        }
    }

    fn phase(&self, name: &str) {
        match &self.0 {
            Some(b) => b.set_message(name.to_owned()),
            None => eprintln!("{name} ..."),
        }
    }
}

fn read_trimmed(path: &std::path::Path, what: &str) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .trim()
        .to_owned())
}

/// Runs `ironroot simulate`.
pub fn run(args: SimulateArgs) -> Result<ExitCode> {
    let server = match &args.server {
        Some(s) => s.clone(),
        None => read_trimmed(
            &args.data_dir.join(ironroot_server::SERVER_URL_FILE),
            "the server URL",
        )
        .context("give --server URL, or --data-dir of a running `ironroot up`")?,
    };
    let token = match std::env::var("IRONROOT_ADMIN_TOKEN") {
        Ok(t) => t,
        Err(_) => {
            let path = args
                .admin_token_file
                .clone()
                .unwrap_or_else(|| args.data_dir.join(ironroot_server::ADMIN_TOKEN_FILE));
            read_trimmed(&path, "the admin token")?
        }
    };
    let ca_path = args
        .ca_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("pki").join("chain.pem"));
    let ca_chain_pem = std::fs::read(&ca_path)
        .with_context(|| format!("cannot read the CA chain {}", ca_path.display()))?;
    let mqtt_text = match &args.mqtt {
        Some(m) => m.clone(),
        None => read_trimmed(
            &args.data_dir.join(ironroot_node::MQTT_ADDR_FILE),
            "the MQTT address",
        )
        .context("give --mqtt HOST:PORT, or --data-dir of a running `ironroot up`")?,
    };
    let Some((host, port)) = mqtt_text.rsplit_once(':') else {
        bail!("--mqtt must be HOST:PORT, got {mqtt_text:?}");
    };
    let port: u16 = port
        .parse()
        .with_context(|| format!("bad MQTT port in {mqtt_text:?}"))?;
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("sim-{:06x}", rand::random::<u32>() & 0xff_ffff));
    let cfg = SimConfig {
        scenario: match args.scenario {
            Scenario::Baseline => ironroot_sim::Scenario::Baseline,
            Scenario::Attacks => ironroot_sim::Scenario::Attacks,
        },
        server,
        mqtt: MqttTarget {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
        },
        ca_chain_pem,
        admin_token: zeroize::Zeroizing::new(token),
        devices: args.devices,
        prefix,
        messages: args.messages,
        interval: args.interval,
        enroll_concurrency: args.concurrency,
        connect_timeout: args.connect_timeout,
        hold: args.hold,
        secure_boot: !args.no_secure_boot,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(args.devices as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} devices {msg} {elapsed}")
        {
            bar.set_style(style);
        }
        bar
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let progress = Arc::new(Bar(bar));
    let report = runtime.block_on(ironroot_sim::run(cfg, progress.clone()))?;
    if let Some(b) = &progress.0 {
        b.finish_and_clear();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.human());
    }
    // Success is the outcome: every device booted (and reported it), connected and had every
    // message acknowledged. Steps
    // that failed and then succeeded on retry (a busy server, a rate limit) are in `failures`
    // for the operator to read, but a fleet that recovered by itself did what it should.
    let expected = report.devices as u64 * u64::from(args.messages);
    let ok = report.connected == report.devices
        && report.messages == expected
        && (args.no_secure_boot || report.booted == report.devices)
        && report.attacks.iter().all(|a| a.refused && a.audited);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
