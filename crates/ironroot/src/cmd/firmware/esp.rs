//! `ironroot firmware esp`: ESP-IDF Secure Boot v2 signing, verification and eFuse key
//! digests, with espsecure 5's subcommand and flag names (and the underscore spellings of
//! older espsecure as aliases).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgAction, Args, Subcommand};
use ironroot_esp::{
    BlockSigner, EspPublicKey, ExternalSignature, ImageDigest, SignError, SigningKey, sign_image,
    sign_image_external, verify_signed_image,
};
use ironroot_pki::{CaSigner, Pin, Pkcs11KeyRef, Pkcs11Signer};

/// ESP32 Secure Boot v2: append signature blocks, check them, compute eFuse key digests.
#[derive(Debug, Args)]
#[command(
    after_help = "Subcommands and flags are those of espsecure 5 (esptool) with \
    `--version 2`: replace `espsecure` with `ironroot firmware esp` in existing scripts.\n\n\
    Supported keys: RSA-3072, ECDSA P-192, P-256, P-384 in PEM (what `espsecure \
    generate-signing-key --version 2` writes; `ironroot firmware keygen -t ecdsa-p256` works too).\n\n\
    Quickstart:\n  \
    ironroot firmware esp sign-data --version 2 --keyfile signing.pem --output app.signed.bin app.bin\n  \
    ironroot firmware esp verify-signature --version 2 --keyfile signing.pem app.signed.bin\n  \
    ironroot firmware esp digest-sbv2-public-key --keyfile signing.pem --output digest.bin\n\
    With the key in an HSM (ECDSA P-256): sign-data --version 2 --pkcs11-module M \
    --pkcs11-token T --pkcs11-key L [--pkcs11-pin-file F] app.bin\n\
    Burn digest.bin into an eFuse key-digest slot (espefuse burn-key ... SECURE_BOOT_DIGEST0)."
)]
pub struct EspArgs {
    #[command(subcommand)]
    command: EspCommand,
}

#[derive(Debug, Subcommand)]
enum EspCommand {
    /// Append a 4 KiB signature sector (one block per key, up to three) to an image.
    #[command(alias = "sign_data", disable_version_flag = true)]
    SignData(SignDataArgs),
    /// Check that an image carries a valid signature block made by the given key.
    #[command(alias = "verify_signature", disable_version_flag = true)]
    VerifySignature(VerifyArgs),
    /// Write the SHA-256 digest of a public key, as burned into eFuse.
    #[command(alias = "digest_sbv2_public_key")]
    DigestSbv2PublicKey(DigestArgs),
}

#[derive(Debug, Args)]
struct SignDataArgs {
    /// Secure boot version; only 2 (signature blocks) is supported.
    #[arg(short = 'v', long = "version", value_name = "2")]
    version: u8,
    /// Private key(s) in PEM; one signature block each (up to three, for key revocation).
    /// Several keys take the values up to the next option: put --output (or `--`) before DATAFILE.
    #[arg(short, long, value_name = "KEYFILE", num_args = 1.., action = ArgAction::Append)]
    keyfile: Vec<PathBuf>,
    /// Output file; by default the input file is overwritten.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Keep the valid blocks already in the image's signature sector and add after them.
    #[arg(short, long, alias = "append_signatures")]
    append_signatures: bool,
    /// Public key(s) of pre-computed signatures (one per --signature), PEM.
    #[arg(long, alias = "pub_key", value_name = "PUBKEY", num_args = 1.., action = ArgAction::Append)]
    pub_key: Vec<PathBuf>,
    /// Pre-computed signature(s) over the 4 KiB-aligned data, e.g. from an HSM: RSA-PSS
    /// (SHA-256, salt 32) raw, ECDSA DER (SHA-384 for P-384).
    #[arg(long, value_name = "SIG", num_args = 1.., action = ArgAction::Append)]
    signature: Vec<PathBuf>,
    /// Sign with an ECDSA P-256 key held in this PKCS#11 module (an HSM; e.g.
    /// /usr/lib/softhsm/libsofthsm2.so) instead of a key file.
    #[arg(long, value_name = "MODULE", requires_all = ["pkcs11_token", "pkcs11_key"])]
    pkcs11_module: Option<PathBuf>,
    /// Label of the PKCS#11 token.
    #[arg(long, value_name = "LABEL", requires = "pkcs11_module")]
    pkcs11_token: Option<String>,
    /// Label of the key pair on the token.
    #[arg(long, value_name = "LABEL", requires = "pkcs11_module")]
    pkcs11_key: Option<String>,
    /// File holding the token user PIN (else the IRONROOT_PKCS11_PIN environment variable).
    #[arg(long, value_name = "FILE", requires = "pkcs11_module")]
    pkcs11_pin_file: Option<PathBuf>,
    /// The image (application or bootloader binary) to sign.
    datafile: PathBuf,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Secure boot version; only 2 (signature blocks) is supported.
    #[arg(short = 'v', long = "version", value_name = "2")]
    version: u8,
    /// Public or private key in PEM whose block must verify.
    #[arg(short, long, value_name = "KEYFILE")]
    keyfile: PathBuf,
    /// The signed image.
    datafile: PathBuf,
}

#[derive(Debug, Args)]
struct DigestArgs {
    /// Public or private key in PEM.
    #[arg(short, long, value_name = "KEYFILE")]
    keyfile: PathBuf,
    /// File to write the 32-byte digest to.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
}

/// Runs `ironroot firmware esp …`.
pub fn run(args: EspArgs) -> Result<()> {
    match args.command {
        EspCommand::SignData(a) => sign_data(a),
        EspCommand::VerifySignature(a) => verify_signature(a),
        EspCommand::DigestSbv2PublicKey(a) => digest(a),
    }
}

fn check_version(version: u8) -> Result<()> {
    if version != 2 {
        bail!("only --version 2 (Secure Boot v2 signature blocks) is supported, not {version}");
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn public_key(path: &Path) -> Result<EspPublicKey> {
    EspPublicKey::from_pem(&read(path)?).with_context(|| format!("key {}", path.display()))
}

/// An ECDSA P-256 key in a PKCS#11 token as a block signer: the token hashes nothing, the
/// signer hashes the body with SHA-256 and the token signs that (CKM_ECDSA), which is the
/// P-256 block's signature.
struct HsmSigner {
    signer: Pkcs11Signer,
    key: EspPublicKey,
}

impl BlockSigner for HsmSigner {
    fn public_key(&self) -> EspPublicKey {
        self.key.clone()
    }

    fn sign(&self, body: &[u8], digest: &ImageDigest) -> Result<Vec<u8>, SignError> {
        let der = self.signer.sign(body).map_err(|_| SignError::Crypto {
            scheme: self.key.scheme(),
        })?;
        let external =
            ExternalSignature::new(self.key.clone(), &der).map_err(|_| SignError::Crypto {
                scheme: self.key.scheme(),
            })?;
        external.sign(body, digest)
    }
}

fn hsm_signer(a: &SignDataArgs, module: &Path) -> Result<HsmSigner> {
    let reference = Pkcs11KeyRef {
        module: module.to_owned(),
        token_label: a
            .pkcs11_token
            .clone()
            .expect("clap requires --pkcs11-token"),
        key_label: a.pkcs11_key.clone().expect("clap requires --pkcs11-key"),
    };
    let pin = match &a.pkcs11_pin_file {
        Some(file) => {
            Pin::from_file(file).with_context(|| format!("reading {}", file.display()))?
        }
        None => Pin::new(std::env::var("IRONROOT_PKCS11_PIN").map_err(|_| {
            anyhow!("the token PIN is needed: give --pkcs11-pin-file or set IRONROOT_PKCS11_PIN")
        })?),
    };
    let signer = Pkcs11Signer::open(&reference, &pin).with_context(|| {
        format!(
            "opening key '{}' on token '{}'",
            reference.key_label, reference.token_label
        )
    })?;
    let key = EspPublicKey::from_sec1(signer.public_key()).context("public key on the token")?;
    Ok(HsmSigner { signer, key })
}

fn sign_data(a: SignDataArgs) -> Result<()> {
    check_version(a.version)?;
    let data = read(&a.datafile)?;
    let signed = if let Some(module) = &a.pkcs11_module {
        if !a.keyfile.is_empty() || !a.signature.is_empty() || !a.pub_key.is_empty() {
            bail!("give either a PKCS#11 key or --keyfile / --pub-key with --signature, not both");
        }
        let hsm = hsm_signer(&a, module)?;
        sign_image(&data, &[&hsm], a.append_signatures)?
    } else if !a.signature.is_empty() || !a.pub_key.is_empty() {
        if !a.keyfile.is_empty() {
            bail!("give either --keyfile or --pub-key with --signature, not both");
        }
        if a.signature.len() != a.pub_key.len() {
            bail!(
                "{} --pub-key but {} --signature: give one public key per signature",
                a.pub_key.len(),
                a.signature.len()
            );
        }
        let external = a
            .pub_key
            .iter()
            .zip(&a.signature)
            .map(|(k, s)| {
                ExternalSignature::new(public_key(k)?, &read(s)?)
                    .with_context(|| format!("signature {}", s.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        sign_image_external(&data, &external, a.append_signatures)?
    } else {
        if a.keyfile.is_empty() {
            bail!(
                "nothing to sign with: give --keyfile, --pub-key with --signature, or a PKCS#11 key"
            );
        }
        let keys = a
            .keyfile
            .iter()
            .map(|k| {
                SigningKey::from_pem(&read(k)?).with_context(|| format!("key {}", k.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        let signers: Vec<&dyn BlockSigner> = keys.iter().map(|k| k as _).collect();
        sign_image(&data, &signers, a.append_signatures)?
    };
    let out = a.output.as_ref().unwrap_or(&a.datafile);
    ironroot_fs::write_atomically(out, &signed.bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "Signed {} bytes of data from {}. Signature sector now has {} signature block(s) ({} kept).",
        signed.bytes.len() - ironroot_esp::SECTOR_SIZE,
        a.datafile.display(),
        signed.kept + signed.added,
        signed.kept
    );
    Ok(())
}

fn verify_signature(a: VerifyArgs) -> Result<()> {
    check_version(a.version)?;
    let key = public_key(&a.keyfile)?;
    let image = read(&a.datafile)?;
    let v = verify_signed_image(&image, &[key.digest()]).with_context(|| {
        format!(
            "{} is not validly signed by {}",
            a.datafile.display(),
            a.keyfile.display()
        )
    })?;
    println!(
        "Signature block {} verification successful using the supplied key ({}).",
        v.block, v.scheme
    );
    Ok(())
}

fn digest(a: DigestArgs) -> Result<()> {
    let key = public_key(&a.keyfile)?;
    ironroot_fs::write_atomically(&a.output, &key.digest().0)
        .with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "Wrote the public key digest of {} ({}) to {}.",
        a.keyfile.display(),
        key.scheme(),
        a.output.display()
    );
    Ok(())
}
