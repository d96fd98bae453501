//! `ironroot firmware`: imgtool-compatible signing, verification and key management for
//! MCUboot images. Subcommands and flags are imgtool 2.5's, so scripts change only the
//! program name.

mod dump;
mod parse;

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use ironroot_image::tools::{
    DecryptOutput, FileSource, HashChoice, HmacSha, KeyFile, KeyFileError, KeyType, PrivateFormat,
    PrivateKey, PublicKeyFormat, SignOptions, decrypt_image, sign,
};
use ironroot_image::{AesKeySize, ImageVersion, TrustedKey, unwrap_image_key, verify_encrypted};
use zeroize::Zeroizing;

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
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Output file for the private key (PEM).
    #[arg(short, long, value_name = "filename")]
    key: PathBuf,
    /// Key type: ecdsa-p256, ed25519 or x25519 (x25519 and ecdsa-p256 also serve as
    /// encryption keys).
    #[arg(short = 't', long = "type", value_name = "type")]
    kind: String,
    /// Protect the key with a passphrase (prompted, or from IRONROOT_KEY_PASSWORD).
    #[arg(short, long)]
    password: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PubEncoding {
    #[value(name = "lang-c")]
    LangC,
    #[value(name = "lang-rust")]
    LangRust,
    Pem,
    Raw,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Lang {
    C,
    Rust,
}

#[derive(Debug, Args)]
struct GetpubArgs {
    /// Key file (private or public PEM).
    #[arg(short, long, value_name = "filename")]
    key: PathBuf,
    /// Output encoding (default lang-c).
    #[arg(short, long, value_name = "encoding")]
    encoding: Option<PubEncoding>,
    /// Deprecated: same as --encoding lang-c / lang-rust.
    #[arg(short, long, value_name = "lang", conflicts_with = "encoding")]
    lang: Option<Lang>,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "output")]
    output: Option<PathBuf>,
    /// Suffix for the emitted C/Rust symbol names.
    #[arg(long, value_name = "SUFFIX", default_value = "")]
    name_suffix: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HashEncoding {
    #[value(name = "lang-c")]
    LangC,
    Raw,
}

#[derive(Debug, Args)]
struct GetpubhashArgs {
    /// Key file (private or public PEM).
    #[arg(short, long, value_name = "filename")]
    key: PathBuf,
    /// Output encoding (default lang-c).
    #[arg(short, long, value_name = "encoding")]
    encoding: Option<HashEncoding>,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "output")]
    output: Option<PathBuf>,
    /// Suffix for the emitted C symbol names.
    #[arg(long, value_name = "SUFFIX", default_value = "")]
    name_suffix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeyKind {
    Private,
    Public,
}

#[derive(Debug, Args)]
struct KeyinfoArgs {
    /// Key file.
    #[arg(short, long, value_name = "filename")]
    key: PathBuf,
    /// Exit non-zero unless the key is of this kind.
    #[arg(long)]
    require: Option<KeyKind>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PrivFormat {
    Pkcs8,
    Openssl,
}

#[derive(Debug, Args)]
struct GetprivArgs {
    /// Key file (ecdsa-p256 or x25519 private key).
    #[arg(short, long, value_name = "filename")]
    key: PathBuf,
    /// Drop the optional public key to save space (P-256).
    #[arg(long)]
    minimal: bool,
    /// Encoding: pkcs8 (default) or openssl (SEC1, P-256 only).
    #[arg(short, long)]
    format: Option<PrivFormat>,
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
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Environment variable holding the passphrase of password-protected keys (for scripts and CI;
/// interactive use prompts instead, as imgtool does).
const PASSWORD_ENV: &str = "IRONROOT_KEY_PASSWORD";

/// A passphrase: from `IRONROOT_KEY_PASSWORD`, else prompted on the terminal without echo, else
/// one line of standard input (like Python's getpass without a terminal).
fn read_password(prompt: &str) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(Zeroizing::new(p));
    }
    if std::io::stdin().is_terminal() {
        return Ok(Zeroizing::new(
            rpassword::prompt_password(prompt).context("reading the passphrase")?,
        ));
    }
    eprint!("{prompt}");
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the passphrase")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    Ok(trimmed)
}

fn load_key(path: &Path) -> Result<KeyFile> {
    let context = || format!("loading key {}", path.display());
    match KeyFile::load(path) {
        Err(KeyFileError::PasswordRequired) => {
            let pw = read_password("Enter key passphrase: ")?;
            KeyFile::load_with_password(path, Some(pw.as_bytes())).with_context(context)
        }
        other => other.with_context(context),
    }
}

fn keygen(a: KeygenArgs) -> Result<()> {
    let kind: KeyType = a.kind.parse()?;
    let password = if a.password {
        let first = read_password("Enter key passphrase: ")?;
        if std::env::var_os(PASSWORD_ENV).is_none() {
            let second = read_password("Reenter passphrase: ")?;
            if *first != *second {
                bail!("passphrases do not match");
            }
        }
        Some(first)
    } else {
        None
    };
    PrivateKey::generate(kind)
        .save_with_password(&a.key, password.as_ref().map(|p| p.as_bytes()))?;
    Ok(())
}

/// Writes to `-o FILE` or stdout.
fn emit(output: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match output {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// imgtool's `_emit_to_output`: a commented C/Rust array, 8 bytes per line.
fn c_array(header: &str, trailer: &str, bytes: &[u8], len_line: Option<String>) -> String {
    let mut s = String::from("/* Autogenerated by imgtool.py, do not edit. */\n");
    s.push_str(header);
    for (i, b) in bytes.iter().enumerate() {
        s.push_str(if i % 8 == 0 { "\n    " } else { " " });
        s.push_str(&format!("0x{b:02x},"));
    }
    s.push('\n');
    s.push_str(trailer);
    s.push('\n');
    if let Some(l) = len_line {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

fn check_suffix(suffix: &str) -> Result<()> {
    if !suffix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!(
            "{suffix:?} must contain only [A-Za-z0-9_]; it is appended directly to a C/Rust identifier"
        );
    }
    Ok(())
}

fn getpub(a: GetpubArgs) -> Result<()> {
    check_suffix(&a.name_suffix)?;
    let enc = match (a.encoding, a.lang) {
        (Some(e), _) => e,
        (None, Some(Lang::Rust)) => PubEncoding::LangRust,
        (None, _) => PubEncoding::LangC,
    };
    if !a.name_suffix.is_empty() && matches!(enc, PubEncoding::Pem | PubEncoding::Raw) {
        bail!("--name-suffix is only meaningful for lang-c / lang-rust encodings");
    }
    let key = load_key(&a.key)?.public_key();
    let der = key.to_spki_der();
    let short = key.key_type().short_name();
    let sfx = &a.name_suffix;
    let out = match enc {
        PubEncoding::LangC => c_array(
            &format!("const unsigned char {short}_pub_key{sfx}[] = {{"),
            "};",
            &der,
            Some(format!(
                "const unsigned int {short}_pub_key{sfx}_len = {};",
                der.len()
            )),
        )
        .into_bytes(),
        PubEncoding::LangRust => c_array(
            &format!(
                "static {}_PUB_KEY{}: &[u8] = &[",
                short.to_uppercase(),
                sfx.to_uppercase()
            ),
            "];",
            &der,
            None,
        )
        .into_bytes(),
        PubEncoding::Pem => key.to_pem().into_bytes(),
        PubEncoding::Raw => der,
    };
    emit(a.output.as_deref(), &out)
}

fn getpubhash(a: GetpubhashArgs) -> Result<()> {
    check_suffix(&a.name_suffix)?;
    let enc = a.encoding.unwrap_or(HashEncoding::LangC);
    if !a.name_suffix.is_empty() && matches!(enc, HashEncoding::Raw) {
        bail!("--name-suffix is only meaningful for the lang-c encoding");
    }
    let key = load_key(&a.key)?.public_key();
    let hash = key.key_hash();
    let short = key.key_type().short_name();
    let sfx = &a.name_suffix;
    let out = match enc {
        HashEncoding::LangC => c_array(
            &format!("const unsigned char {short}_pub_key_hash{sfx}[] = {{"),
            "};",
            &hash,
            Some(format!(
                "const unsigned int {short}_pub_key_hash{sfx}_len = {};",
                hash.len()
            )),
        )
        .into_bytes(),
        HashEncoding::Raw => hash.to_vec(),
    };
    emit(a.output.as_deref(), &out)
}

fn keyinfo(a: KeyinfoArgs) -> Result<()> {
    let kind = match load_key(&a.key)? {
        KeyFile::Private(_) => KeyKind::Private,
        _ => KeyKind::Public,
    };
    let name = if kind == KeyKind::Private {
        "private"
    } else {
        "public"
    };
    println!("{name}");
    if let Some(req) = a.require
        && req != kind
    {
        bail!(
            "key {} is {name}, but {} was required",
            a.key.display(),
            if req == KeyKind::Private {
                "private"
            } else {
                "public"
            }
        );
    }
    Ok(())
}

fn getpriv(a: GetprivArgs) -> Result<()> {
    let key = load_key(&a.key)?;
    let format = match a.format {
        Some(PrivFormat::Openssl) => PrivateFormat::Openssl,
        _ => PrivateFormat::Pkcs8,
    };
    let der = key.private_key()?.decryption_key_der(format, a.minimal)?;
    let text = Zeroizing::new(c_array(
        "const unsigned char enc_priv_key[] = {",
        "};",
        &der,
        Some(format!(
            "const unsigned int enc_priv_key_len = {};",
            der.len()
        )),
    ));
    emit(None, text.as_bytes())
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
