//! `ironroot boot`: a simulated device with secure boot, to try every update path by hand.
//!
//! The device lives in a directory: raw NOR flash (`flash.bin`), OTP fuses (`otp.bin`) and its
//! layout (`device.json`). `run` powers it on: the boot ROM verifies the bootloader image
//! against the key hash fused in OTP, the bootloader swaps in updates (test, permanent,
//! revert), enforces anti-rollback, verifies the application and prints its decision.

mod devdir;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use ironroot_boot::sim::{CutMode, FileFlash, SimGeometry, SimOtp};
use ironroot_boot::{Confirmation, Layout, Otp, Outcome, Region};
use ironroot_image::tools::KeyFile;

use devdir::{Config, Loaded};

/// Simulate a device with secure boot: OTP root of trust, boot ROM, bootloader, A/B slots.
#[derive(Debug, Args)]
#[command(
    long_about = "Simulate a device with secure boot, to try signed updates, power cuts and \
    rollback protection by hand.\n\n\
    The device is a directory holding its flash (flash.bin), its one-time-programmable fuses \
    (otp.bin) and its layout (device.json). Its boot ROM trusts only keys whose SHA-256 is \
    fused in OTP; its bootloader is MCUboot-compatible (swap-move with test, permanent and \
    revert swaps) and refuses images whose security counter is below the OTP counter.\n\n\
    Quickstart:\n  \
    ironroot firmware keygen -t ecdsa-p256 -k root.pem\n  \
    ironroot boot init --flash dev --root-key root.pem\n  \
    ironroot firmware sign -k root.pem -v 0.1.0 -H 0x200 --pad-header -S 0x10000 bl.bin bl.signed\n  \
    ironroot firmware sign -k root.pem -v 1.0.0 -s 1 -H 0x200 --pad-header -S 0x40000 --align 8 app1.bin app1.signed\n  \
    ironroot firmware sign -k root.pem -v 2.0.0 -s 2 -H 0x200 --pad-header -S 0x40000 --align 8 --pad app2.bin app2.signed\n  \
    ironroot boot write --flash dev --bootloader bl.signed\n  \
    ironroot boot write --flash dev --primary app1.signed\n  \
    ironroot boot write --flash dev --secondary app2.signed\n  \
    ironroot boot run --flash dev        # test swap: app2 runs on trial\n  \
    ironroot boot confirm --flash dev    # app2's health check passed\n  \
    ironroot boot status --flash dev\n\n\
    `boot run` exits with status 2 when nothing bootable remains, 3 after a simulated power cut."
)]
pub struct BootArgs {
    #[command(subcommand)]
    command: BootCommand,
}

#[derive(Debug, Subcommand)]
enum BootCommand {
    /// Create a device: erased flash, fuse the root key hash(es) into OTP and lock it.
    Init(InitArgs),
    /// Program an image into the bootloader region or a slot (erasing it first).
    Write(WriteArgs),
    /// Power the device on: boot ROM, then bootloader; print the boot decision.
    Run(RunArgs),
    /// Confirm the running image, as the application does after its health check.
    Confirm(DirArg),
    /// Show slots, trailers, the pending request and the OTP state (read-only).
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct DirArg {
    /// The device directory.
    #[arg(long, value_name = "DIR")]
    flash: PathBuf,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a number: {e}"))
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The device directory to create (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    flash: PathBuf,
    /// Root-of-trust key (PEM, private or public): its SHA-256 is fused into OTP. Repeat for
    /// up to 4 keys.
    #[arg(long, value_name = "KEY.pem", required = true)]
    root_key: Vec<PathBuf>,
    /// Secondary slot size: what images are signed for with `-S`. The primary slot is one
    /// sector larger (swap-move needs a spare sector).
    #[arg(long, value_name = "BYTES", default_value = "0x40000", value_parser = parse_u32)]
    slot_size: u32,
    /// Primary slot size, if not slot-size + one sector.
    #[arg(long, value_name = "BYTES", value_parser = parse_u32)]
    primary_size: Option<u32>,
    /// Flash erase unit (sector) size.
    #[arg(long, value_name = "BYTES", default_value = "0x1000", value_parser = parse_u32)]
    sector_size: u32,
    /// Flash write unit: sign images with `--align` equal to it.
    #[arg(long, value_name = "BYTES", default_value = "8", value_parser = parse_u32)]
    write_size: u32,
    /// Size of the bootloader region at the start of flash.
    #[arg(long, value_name = "BYTES", default_value = "0x10000", value_parser = parse_u32)]
    bootloader_size: u32,
    /// Value of erased flash (0xff or 0); sign with `-R` to match.
    #[arg(long, value_name = "BYTE", default_value = "0xff", value_parser = parse_u32)]
    erased_value: u32,
    /// The device's private key for encrypted (ENC_EC256 / ENC_X25519) images; it is copied
    /// into the device directory.
    #[arg(long, value_name = "KEY.pem")]
    decryption_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RequestKind {
    /// Run the image once; revert unless it confirms itself.
    Test,
    /// Install it for good.
    Permanent,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["bootloader", "primary", "secondary"])))]
struct WriteArgs {
    /// The device directory.
    #[arg(long, value_name = "DIR")]
    flash: PathBuf,
    /// Write to the bootloader region.
    #[arg(long, value_name = "IMAGE.bin")]
    bootloader: Option<PathBuf>,
    /// Write to the primary slot (a factory image).
    #[arg(long, value_name = "IMAGE.bin")]
    primary: Option<PathBuf>,
    /// Write to the secondary slot (an update). Padded images (`--pad`, `--pad --confirm`)
    /// carry their own request.
    #[arg(long, value_name = "IMAGE.bin")]
    secondary: Option<PathBuf>,
    /// After writing to the secondary slot, request an update as the application would (for
    /// images signed without `--pad`).
    #[arg(long, value_enum, requires = "secondary")]
    request: Option<RequestKind>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The device directory.
    #[arg(long, value_name = "DIR")]
    flash: PathBuf,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
    /// Cut the power during the N-th flash write, sector erase or fuse burn of this boot
    /// (1 = the first). The flash keeps what the cut left; run again to recover.
    #[arg(long, value_name = "N")]
    cut_at: Option<u64>,
    /// With --cut-at: leave the interrupted operation half done (torn), not undone.
    #[arg(long, requires = "cut_at")]
    torn: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The device directory.
    #[arg(long, value_name = "DIR")]
    flash: PathBuf,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs an `ironroot boot` subcommand.
pub fn run(args: BootArgs) -> ExitCode {
    let res = match args.command {
        BootCommand::Init(a) => init(a).map(|()| ExitCode::SUCCESS),
        BootCommand::Write(a) => write(a).map(|()| ExitCode::SUCCESS),
        BootCommand::Run(a) => run_boot(a),
        BootCommand::Confirm(a) => confirm(a).map(|()| ExitCode::SUCCESS),
        BootCommand::Status(a) => status(a).map(|()| ExitCode::SUCCESS),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init(a: InitArgs) -> Result<()> {
    if a.root_key.len() > ironroot_boot::otp::KEY_SLOTS {
        bail!(
            "at most {} root keys fit in OTP",
            ironroot_boot::otp::KEY_SLOTS
        );
    }
    if a.erased_value != 0xff && a.erased_value != 0 {
        bail!("--erased-value must be 0xff or 0");
    }
    let s = a.sector_size;
    let boot_size = a.bootloader_size.max(s).div_ceil(s) * s;
    let primary_size = a.primary_size.unwrap_or(a.slot_size.saturating_add(s));
    let bootloader = Region::new(0, boot_size);
    let primary = Region::new(bootloader.end(), primary_size);
    let secondary = Region::new(primary.end(), a.slot_size);
    let mut keys = Vec::new();
    let mut hashes = Vec::new();
    for path in &a.root_key {
        let kf = KeyFile::load(path).with_context(|| format!("loading {}", path.display()))?;
        let public = kf.public_key();
        public
            .trusted_key()
            .ok_or_else(|| anyhow!("{} is not a signing key", path.display()))?;
        keys.push(devdir::hex(&public.to_spki_der()));
        hashes.push(public.key_hash());
    }
    let decryption = match &a.decryption_key {
        Some(p) => {
            let kf = KeyFile::load(p).with_context(|| format!("loading {}", p.display()))?;
            let pk = kf
                .private_key()
                .map_err(|e| anyhow!("{}: {e} (the device needs the private key)", p.display()))?;
            if pk.decryption_key().is_none() {
                bail!(
                    "{} cannot decrypt images (use an ecdsa-p256 or x25519 key)",
                    p.display()
                );
            }
            Some(kf)
        }
        None => None,
    };
    let config = Config {
        format: 1,
        sector_size: s,
        write_size: a.write_size,
        erased: a.erased_value as u8,
        max_sectors: ironroot_boot::layout::DEFAULT_MAX_SECTORS,
        bootloader: bootloader.into(),
        primary: primary.into(),
        secondary: secondary.into(),
        public_keys: keys,
        decryption_key: decryption.is_some(),
    };
    let layout: Layout = config.layout()?;
    if a.flash.exists() && std::fs::read_dir(&a.flash)?.next().is_some() {
        bail!("{} exists and is not empty", a.flash.display());
    }
    std::fs::create_dir_all(&a.flash).with_context(|| format!("creating {}", a.flash.display()))?;
    let geo: SimGeometry = config.geometry();
    FileFlash::create(&a.flash.join(devdir::FLASH), geo)
        .with_context(|| format!("creating {}", a.flash.join(devdir::FLASH).display()))?;
    let mut otp = Otp::new(SimOtp::open(
        &a.flash.join(devdir::OTP),
        Default::default(),
    )?)
    .map_err(|e| anyhow!("{e}"))?;
    for h in &hashes {
        otp.provision_key_hash(h).map_err(|e| anyhow!("{e}"))?;
    }
    otp.lock().map_err(|e| anyhow!("{e}"))?;
    otp.cells().persist()?;
    if let Some(kf) = decryption {
        let path = a.flash.join(devdir::DEVICE_KEY);
        kf.private_key()
            .map_err(|e| anyhow!("{e}"))?
            .save(&path)
            .map_err(|e| anyhow!("saving {}: {e}", path.display()))?;
    }
    std::fs::write(
        a.flash.join(devdir::CONFIG),
        serde_json::to_string_pretty(&config)? + "\n",
    )?;
    report::print_init(&a.flash, &config, &layout, &hashes);
    Ok(())
}

fn write(a: WriteArgs) -> Result<()> {
    let mut dev = Loaded::open(&a.flash)?;
    let (name, path, region) = match (&a.bootloader, &a.primary, &a.secondary) {
        (Some(p), _, _) => ("bootloader region", p, dev.layout.bootloader),
        (_, Some(p), _) => ("primary slot", p, dev.layout.primary),
        (_, _, Some(p)) => ("secondary slot", p, dev.layout.secondary),
        _ => unreachable!("clap requires one target"),
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > region.size as usize {
        bail!(
            "{} is {} bytes but the {name} holds {} (sign with -S {:#x})",
            path.display(),
            bytes.len(),
            region.size,
            dev.layout.secondary.size
        );
    }
    let mem = dev.flash.memory_mut();
    mem.erase_raw(region.offset, region.size);
    mem.program_raw(region.offset, &bytes);
    if let Some(kind) = a.request {
        dev.device()?
            .request_update(matches!(kind, RequestKind::Permanent))
            .map_err(|e| anyhow!("{e}"))?;
    }
    dev.persist()?;
    println!(
        "wrote {} bytes to the {name} ({}){}",
        bytes.len(),
        region,
        match a.request {
            Some(RequestKind::Test) => "; test swap requested",
            Some(RequestKind::Permanent) => "; permanent swap requested",
            None => "",
        }
    );
    Ok(())
}

fn run_boot(a: RunArgs) -> Result<ExitCode> {
    let mut dev = Loaded::open(&a.flash)?;
    let start = dev.power.ops();
    if let Some(n) = a.cut_at {
        if n == 0 {
            bail!("--cut-at counts from 1");
        }
        let mode = if a.torn {
            CutMode::Torn { seed: n }
        } else {
            CutMode::Before
        };
        dev.power.arm(n, mode);
    }
    dev.flash.memory_mut().reset_stats();
    let result = dev.device()?.power_on();
    let ops = dev.power.ops() - start;
    let stats = dev.flash.memory().stats();
    let lost = dev.power.is_lost();
    dev.power.restore();
    dev.persist()?;
    match result {
        Ok(d) => {
            if a.cut_at.is_some() {
                eprintln!(
                    "note: the boot finished after {ops} operations, before the requested cut"
                );
            }
            report::print_decision(&d, &stats, a.json)?;
            Ok(match d.outcome {
                Outcome::Boot(_) => ExitCode::SUCCESS,
                Outcome::NothingBootable => ExitCode::from(2),
            })
        }
        Err(e) if lost => {
            eprintln!(
                "power cut during operation {ops} of this boot ({e}); the flash keeps what the \
                 cut left: run `ironroot boot run --flash {}` to power on again",
                a.flash.display()
            );
            Ok(ExitCode::from(3))
        }
        Err(e) => Err(anyhow!("{e}")),
    }
}

fn confirm(a: DirArg) -> Result<()> {
    let mut dev = Loaded::open(&a.flash)?;
    let c = dev.device()?.confirm().map_err(|e| anyhow!("{e}"))?;
    dev.persist()?;
    println!(
        "{}",
        match c {
            Confirmation::Confirmed => "confirmed: the running image stays after the next reset",
            Confirmation::AlreadyConfirmed => "already confirmed",
            Confirmation::Permanent => "nothing to confirm: the running image is permanent",
        }
    );
    Ok(())
}

fn status(a: StatusArgs) -> Result<()> {
    let mut dev = Loaded::open(&a.flash)?;
    let st = dev.device()?.status().map_err(|e| anyhow!("{e}"))?;
    let layout = dev.layout;
    report::print_status(&dev.dir, &layout, &st, a.json)
}
