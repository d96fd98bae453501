//! The key subcommands of `ironroot firmware` (keygen, getpub, getpubhash, keyinfo, getpriv)
//! and how key files and their passphrases are read.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ironroot_image::tools::{KeyFile, KeyFileError, KeyType, PrivateFormat, PrivateKey};
use zeroize::Zeroizing;

#[derive(Debug, Args)]
pub(super) struct KeygenArgs {
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
pub(super) struct GetpubArgs {
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
pub(super) struct GetpubhashArgs {
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
pub(super) struct KeyinfoArgs {
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
pub(super) struct GetprivArgs {
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

/// Environment variable holding the passphrase of password-protected keys (for scripts and CI;
/// interactive use prompts instead, as imgtool does).
pub(super) const PASSWORD_ENV: &str = "IRONROOT_KEY_PASSWORD";

/// A passphrase: from `IRONROOT_KEY_PASSWORD`, else prompted on the terminal without echo, else
/// one line of standard input (like Python's getpass without a terminal).
pub(super) fn read_password(prompt: &str) -> Result<Zeroizing<String>> {
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

pub(super) fn load_key(path: &Path) -> Result<KeyFile> {
    let context = || format!("loading key {}", path.display());
    match KeyFile::load(path) {
        Err(KeyFileError::PasswordRequired) => {
            let pw = read_password("Enter key passphrase: ")?;
            KeyFile::load_with_password(path, Some(pw.as_bytes())).with_context(context)
        }
        other => other.with_context(context),
    }
}

pub(super) fn keygen(a: KeygenArgs) -> Result<()> {
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
pub(super) fn emit(output: Option<&Path>, bytes: &[u8]) -> Result<()> {
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

pub(super) fn getpub(a: GetpubArgs) -> Result<()> {
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

pub(super) fn getpubhash(a: GetpubhashArgs) -> Result<()> {
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

pub(super) fn keyinfo(a: KeyinfoArgs) -> Result<()> {
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

pub(super) fn getpriv(a: GetprivArgs) -> Result<()> {
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
