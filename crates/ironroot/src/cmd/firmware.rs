//! `ironroot firmware`: imgtool-compatible signing, verification and key management for
//! MCUboot images. Subcommands and flags are imgtool 2.5's, so scripts change only the
//! program name; `scan` (the static secret scanner) is ironroot's own.

mod dump;
mod esp;
mod keys;
mod parse;
mod scan;

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use ironroot_image::tools::{
    DecryptOutput, FileSource, HashChoice, HmacSha, PublicKeyFormat, SignOptions, decrypt_image,
    sign,
};
use ironroot_image::{AesKeySize, ImageVersion, TrustedKey, unwrap_image_key, verify_encrypted};

use keys::{
    GetprivArgs, GetpubArgs, GetpubhashArgs, KeygenArgs, KeyinfoArgs, emit, getpriv, getpub,
    getpubhash, keygen, keyinfo, load_key,
};

/// Sign, verify, inspect and encrypt MCUboot firmware images (imgtool-compatible).
#[derive(Debug, Args)]
#[command(
    after_help = "Subcommands and flags are those of MCUboot's imgtool 2.5: replace `imgtool` \
    with `ironroot firmware` in existing scripts.\n\n\
    Quickstart:\n  \
    ironroot firmware keygen -t ecdsa-p256 -k signing.pem\n  \
    ironroot firmware sign -k signing.pem -v 1.0.0 -H 0x200 --pad-header -S 0x20000 app.bin app.signed.bin\n  \
    ironroot firmware verify -k signing.pem app.signed.bin"
)]
pub struct FirmwareArgs {
    #[command(subcommand)]
    command: FirmwareCommand,
}

#[derive(Debug, Subcommand)]
enum FirmwareCommand {
    /// Generate a key pair (PKCS#8 PEM, as imgtool writes it).
    Keygen(KeygenArgs),
    /// Print the public key of a key file (C array by default).
    Getpub(GetpubArgs),
    /// Print the SHA-256 of the public key (the value to provision in OTP).
    Getpubhash(GetpubhashArgs),
    /// Say whether a key file holds a private key or only a public key.
    Keyinfo(KeyinfoArgs),
    /// Print the private key as a C array, for a bootloader that decrypts images.
    Getpriv(GetprivArgs),
    /// Sign (and optionally encrypt) a firmware binary into an MCUboot image.
    #[command(visible_alias = "create", disable_version_flag = true)]
    Sign(Box<parse::SignArgs>),
    /// Check an image's hash and signature; exit 0 only if it is valid for the key.
    Verify(VerifyArgs),
    /// Print header, TLVs and trailer of an image.
    Dumpinfo(DumpinfoArgs),
    /// Decrypt an encrypted image with the device's private key.
    Decrypt(DecryptArgs),
    /// ESP32 Secure Boot v2 (espsecure-compatible): sign-data, verify-signature, key digests.
    Esp(esp::EspArgs),
    /// Scan a firmware binary for embedded keys, tokens, passwords and weaknesses (a CI gate:
    /// exit 1 on findings at or above --fail-on, 2 on errors).
    Scan(scan::ScanArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Public (or private) key of the signer. Repeat to accept any of several keys.
    #[arg(short, long, value_name = "filename", required = true)]
    key: Vec<PathBuf>,
    /// Device private key, to verify an image whose payload is still encrypted.
    #[arg(long, value_name = "filename")]
    decrypt_key: Option<PathBuf>,
    /// Image file.
    imgfile: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DumpFormat {
    Human,
    Yaml,
    Json,
}

#[derive(Debug, Args)]
struct DumpinfoArgs {
    /// Image file.
    imgfile: PathBuf,
    /// Save image information to this file.
    #[arg(short, long, value_name = "filename")]
    outfile: Option<PathBuf>,
    /// Output format (default: human on stdout, yaml in a file).
    #[arg(short = 'f', long = "format", value_name = "format")]
    format: Option<DumpFormat>,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Accepted for imgtool compatibility; ignored (as in imgtool).
    #[arg(short, long)]
    silent: bool,
}

#[derive(Debug, Args)]
struct DecryptArgs {
    /// Device private key (ecdsa-p256 for ENC_EC256, x25519 for ENC_X25519).
    #[arg(short, long, value_name = "filename")]
    key: PathBuf,
    /// Write only the plaintext payload instead of the whole image.
    #[arg(long)]
    payload_only: bool,
    /// Encrypted image.
    infile: PathBuf,
    /// Output file: the image with its payload decrypted (header and TLVs unchanged, as
    /// MCUboot leaves it in the primary slot).
    outfile: PathBuf,
}

/// Runs `ironroot firmware …`; errors print as one line and exit non-zero.
pub fn run(args: FirmwareArgs) -> ExitCode {
    let res = match args.command {
        FirmwareCommand::Keygen(a) => keygen(a),
        FirmwareCommand::Getpub(a) => getpub(a),
        FirmwareCommand::Getpubhash(a) => getpubhash(a),
        FirmwareCommand::Keyinfo(a) => keyinfo(a),
        FirmwareCommand::Getpriv(a) => getpriv(a),
        FirmwareCommand::Sign(a) => sign_cmd(*a),
        FirmwareCommand::Verify(a) => verify_cmd(a),
        FirmwareCommand::Dumpinfo(a) => dumpinfo(a),
        FirmwareCommand::Decrypt(a) => decrypt_cmd(a),
        FirmwareCommand::Esp(a) => esp::run(a),
        // The scanner's exit status is its verdict (0 pass, 1 findings, 2 error).
        FirmwareCommand::Scan(a) => return scan::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sign_cmd(a: parse::SignArgs) -> Result<()> {
    let plan = a.into_plan()?;
    let key = plan.key.as_deref().map(load_key).transpose()?;
    let key = key
        .as_ref()
        .map(|k| {
            k.private_key().map_err(|_| {
                anyhow!("cannot sign with a public-only PEM; signing requires the private key")
            })
        })
        .transpose()?;
    let enc = plan
        .encrypt
        .as_deref()
        .map(load_key)
        .transpose()?
        .map(|k| k.public_key());
    let input = File::open(&plan.infile)
        .with_context(|| format!("opening input {}", plan.infile.display()))?;
    // Sign into a temporary file next to the output, then rename: no half-written images.
    let tmp = plan.outfile.with_extension("ironroot-tmp");
    let out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let res = sign(
        BufReader::new(input),
        BufWriter::new(out),
        key,
        enc.as_ref(),
        &plan.options,
    );
    let signed = match res {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    std::fs::rename(&tmp, &plan.outfile)
        .with_context(|| format!("writing {}", plan.outfile.display()))?;
    if let (Some(path), Some(sig)) = (&plan.sig_out, &signed.signature) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
        std::fs::write(path, b64).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn trusted_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>> {
    paths
        .iter()
        .map(|p| {
            let key = load_key(p)?.public_key();
            key.trusted_key().ok_or_else(|| {
                anyhow!(
                    "{} is a {} key, which cannot sign images",
                    p.display(),
                    key.key_type()
                )
            })
        })
        .collect()
}

fn verify_cmd(a: VerifyArgs) -> Result<()> {
    let keys = trusted_keys(&a.key)?;
    let open =
        || FileSource::open(&a.imgfile).with_context(|| format!("opening {}", a.imgfile.display()));
    let verified = match &a.decrypt_key {
        None => {
            let mut chunk = vec![0u8; 64 * 1024];
            ironroot_image::verify_with_buffer(open()?, &keys, &mut chunk)
        }
        Some(dk_path) => {
            let dk = load_key(dk_path)?
                .private_key()?
                .decryption_key()
                .ok_or_else(|| anyhow!("{} cannot decrypt images", dk_path.display()))?;
            let image_key = unwrap_image_key(open()?, &dk)?;
            verify_encrypted(open()?, &keys, &image_key)
        }
    }
    .map_err(|e| anyhow!("{}: {e}", a.imgfile.display()))?;
    println!("Image was correctly validated");
    println!("Image version: {}", verified.version);
    println!("Image digest: {}", hex(&verified.digest));
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dumpinfo(a: DumpinfoArgs) -> Result<()> {
    let format = match (a.format, a.json, &a.outfile) {
        (Some(f), _, _) => f,
        (None, true, _) => DumpFormat::Json,
        (None, false, None) => DumpFormat::Human,
        (None, false, Some(_)) => DumpFormat::Yaml,
    };
    let src = FileSource::open(&a.imgfile)
        .with_context(|| format!("image file not found ({})", a.imgfile.display()))?;
    let info = ironroot_image::tools::ImageDump::read(src)
        .map_err(|e| anyhow!("{}: {e}", a.imgfile.display()))?;
    let filename = a
        .imgfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = match format {
        DumpFormat::Human => dump::human(&filename, &info),
        DumpFormat::Json => dump::json(&filename, &info)?,
        DumpFormat::Yaml => dump::yaml(&filename, &info),
    };
    emit(a.outfile.as_deref(), text.as_bytes())
}

fn decrypt_cmd(a: DecryptArgs) -> Result<()> {
    let key = load_key(&a.key)?;
    let dk = key.private_key()?.decryption_key().ok_or_else(|| {
        anyhow!(
            "{} is an ed25519 key, which cannot decrypt images",
            a.key.display()
        )
    })?;
    let src =
        FileSource::open(&a.infile).with_context(|| format!("opening {}", a.infile.display()))?;
    let what = if a.payload_only {
        DecryptOutput::Payload
    } else {
        DecryptOutput::Image
    };
    let tmp = a.outfile.with_extension("ironroot-tmp");
    let out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = decrypt_image(src, BufWriter::new(out), &dk, what) {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow!("{}: {e}", a.infile.display()));
    }
    std::fs::rename(&tmp, &a.outfile)
        .with_context(|| format!("writing {}", a.outfile.display()))?;
    Ok(())
}

// Re-exported for the sign argument parser.
pub(crate) use ironroot_image::tools::SecurityCounter;

pub(crate) fn hash_choice(s: &str) -> Result<HashChoice> {
    match s {
        "auto" => Ok(HashChoice::Auto),
        "256" => Ok(HashChoice::Sha256),
        "512" => Ok(HashChoice::Sha512),
        "384" => bail!("--sha 384 is for ecdsa-p384 keys, which are not supported"),
        other => bail!("invalid --sha {other:?} (use auto, 256 or 512)"),
    }
}

pub(crate) fn hmac_choice(s: &str) -> Result<HmacSha> {
    match s {
        "auto" | "256" => Ok(HmacSha::Sha256),
        "512" => Ok(HmacSha::Sha512),
        other => bail!("invalid --hmac-sha {other:?} (use auto, 256 or 512)"),
    }
}

pub(crate) fn keylen_choice(s: &str) -> Result<AesKeySize> {
    match s {
        "128" => Ok(AesKeySize::Aes128),
        "256" => Ok(AesKeySize::Aes256),
        other => bail!("invalid --encrypt-keylen {other:?} (use 128 or 256)"),
    }
}

pub(crate) fn key_format(s: &str) -> Result<PublicKeyFormat> {
    match s {
        "hash" => Ok(PublicKeyFormat::Hash),
        "full" => Ok(PublicKeyFormat::Full),
        other => bail!("invalid --public-key-format {other:?} (use hash or full)"),
    }
}

pub(crate) fn new_options(version: ImageVersion, header: u16, slot: u32) -> SignOptions {
    SignOptions::new(version, header, slot)
}
