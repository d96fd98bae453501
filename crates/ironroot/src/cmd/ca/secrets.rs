//! Secrets of `ironroot ca …` and `ironroot up`: the root passphrase, the online passphrase,
//! the PKCS#11 PIN, each from a file or an environment variable, never from the command line.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ironroot_pki::{CaDirectory, OnlineKeyBackend, OnlineSecrets, Passphrase, Pin};

use super::OnlineKeyArgs;

pub(super) fn read_secret_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

pub(super) fn root_passphrase(file: Option<&Path>) -> Result<Passphrase> {
    let bytes = match (file, std::env::var_os("IRONROOT_ROOT_PASSPHRASE")) {
        (Some(f), _) => read_secret_file(f)?,
        (None, Some(v)) => v.into_encoded_bytes(),
        (None, None) => bail!(
            "the root passphrase is needed: give --root-passphrase-file FILE or set IRONROOT_ROOT_PASSPHRASE"
        ),
    };
    Ok(Passphrase::new(bytes)?)
}

fn online_passphrase(args: &OnlineKeyArgs, dir: &CaDirectory) -> Result<Option<Passphrase>> {
    let bytes = if let Some(f) = &args.ca_passphrase_file {
        read_secret_file(f)?
    } else if let Some(v) = std::env::var_os("IRONROOT_CA_PASSPHRASE") {
        v.into_encoded_bytes()
    } else {
        let generated = dir.path().join("online-passphrase");
        if !generated.exists() {
            return Ok(None);
        }
        read_secret_file(&generated)?
    };
    Ok(Some(Passphrase::new(bytes)?))
}

fn pkcs11_pin(args: &OnlineKeyArgs) -> Result<Option<Pin>> {
    read_pkcs11_pin(args.pkcs11_pin_file.as_deref())
}

/// The PKCS#11 user PIN from `file`, else from IRONROOT_PKCS11_PIN, else none (`ca` commands
/// and `up` read it the same way).
fn read_pkcs11_pin(file: Option<&Path>) -> Result<Option<Pin>> {
    if let Some(f) = file {
        return Ok(Some(
            Pin::from_file(f).with_context(|| format!("reading {}", f.display()))?,
        ));
    }
    Ok(std::env::var("IRONROOT_PKCS11_PIN").ok().map(Pin::new))
}

pub(crate) fn online_secrets(args: &OnlineKeyArgs, dir: &CaDirectory) -> Result<OnlineSecrets> {
    Ok(OnlineSecrets {
        passphrase: online_passphrase(args, dir)?,
        pkcs11_pin: pkcs11_pin(args)?,
    })
}

pub(super) fn new_key_backend(args: &OnlineKeyArgs, dir: &CaDirectory) -> Result<OnlineKeyBackend> {
    if let Some(module) = &args.pkcs11_module {
        let pin = pkcs11_pin(args)?.context(
            "the PKCS#11 PIN is needed: give --pkcs11-pin-file FILE or set IRONROOT_PKCS11_PIN",
        )?;
        return Ok(OnlineKeyBackend::Pkcs11 {
            module: module.clone(),
            token_label: args
                .pkcs11_token
                .clone()
                .context("--pkcs11-token is required with --pkcs11-module")?,
            pin,
        });
    }
    let pass = online_passphrase(args, dir)?
        .context("the online CA passphrase is needed: give --ca-passphrase-file FILE or set IRONROOT_CA_PASSPHRASE")?;
    Ok(OnlineKeyBackend::EncryptedFile(pass))
}
