//! Key files in the PEM formats imgtool reads and writes.
//!
//! imgtool (via Python `cryptography`) writes private keys as unencrypted PKCS#8
//! (`-----BEGIN PRIVATE KEY-----`) and public keys as SubjectPublicKeyInfo
//! (`-----BEGIN PUBLIC KEY-----`). It reads those plus SEC1 `EC PRIVATE KEY` files (what
//! `openssl ecparam -genkey` makes). This module reads all three and writes the first two
//! byte-for-byte as imgtool does for Ed25519 and X25519 (P-256 PKCS#8 differs only in whether
//! optional fields are present; both tools load either).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use pkcs8::der::Decode;
use pkcs8::der::pem::LineEnding;
use sha2::{Digest, Sha256};
use spki::ObjectIdentifier;
use zeroize::Zeroizing;

use crate::encrypted::DecryptionKey;
use crate::keys::{ED25519_SPKI_PREFIX, TrustedKey, X25519_SPKI_PREFIX};

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");

/// DER prefix of an Ed25519 PKCS#8 v1 private key; the 32-byte seed follows (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER prefix of an X25519 PKCS#8 v1 private key; the 32-byte scalar follows (RFC 8410).
const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

/// DER of the prime256v1 OID.
const P256_OID_DER: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Encoding of a private key for `getpriv` (imgtool `-f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrivateFormat {
    /// PKCS#8 (default).
    #[default]
    Pkcs8,
    /// SEC1 `ECPrivateKey` ("TraditionalOpenSSL"), P-256 only.
    Openssl,
}

/// The key types `keygen` makes, with imgtool's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA on NIST P-256 (`ecdsa-p256`); signs images, and receives ENC_EC256 images.
    EcdsaP256,
    /// Ed25519 (`ed25519`); signs images.
    Ed25519,
    /// X25519 (`x25519`); receives ENC_X25519 images.
    X25519,
}

impl KeyType {
    /// imgtool's name for the type.
    pub const fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Ed25519 => "ed25519",
            Self::X25519 => "x25519",
        }
    }

    /// imgtool's short name, used in emitted C/Rust symbol names.
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa",
            Self::Ed25519 => "ed25519",
            Self::X25519 => "x25519",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = KeyFileError;
    fn from_str(s: &str) -> Result<Self, KeyFileError> {
        match s {
            "ecdsa-p256" => Ok(Self::EcdsaP256),
            "ed25519" => Ok(Self::Ed25519),
            "x25519" => Ok(Self::X25519),
            other => Err(KeyFileError::UnsupportedAlgorithm {
                what: other.to_owned(),
            }),
        }
    }
}

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing the file failed.
    #[error("cannot access key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM.
    #[error("key file is not PEM (expected -----BEGIN PRIVATE KEY----- or PUBLIC KEY)")]
    NotPem,
    /// The PEM label is not a key type this tool reads.
    #[error("unsupported PEM block {label:?} (expected PRIVATE KEY, EC PRIVATE KEY or PUBLIC KEY)")]
    UnsupportedLabel {
        /// The label found.
        label: String,
    },
    /// The key is password-protected and no password was given.
    #[error("key file is password-protected; a passphrase is required")]
    PasswordRequired,
    /// The password does not decrypt the key (or the encrypted key is malformed).
    #[error("cannot decrypt the key file: wrong passphrase or unsupported encryption")]
    BadPassword,
    /// The key's algorithm or curve is not supported.
    #[error("unsupported key type {what} (supported: ecdsa-p256, ed25519, x25519)")]
    UnsupportedAlgorithm {
        /// What was found.
        what: String,
    },
    /// The DER inside the PEM is malformed.
    #[error("malformed {what} key")]
    Malformed {
        /// Which structure failed to parse.
        what: &'static str,
    },
    /// A private key was needed but the file holds a public key.
    #[error("key file holds only a public key; this operation needs the private key")]
    NeedPrivate,
}

fn malformed(what: &'static str) -> impl FnOnce(pkcs8::Error) -> KeyFileError {
    move |_| KeyFileError::Malformed { what }
}

/// A private key of a supported type. Secret material is zeroized on drop by the wrapped types.
#[non_exhaustive]
pub enum PrivateKey {
    /// ECDSA P-256.
    EcdsaP256(p256::SecretKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// X25519.
    X25519(x25519_dalek::StaticSecret),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.key_type())
    }
}

impl PrivateKey {
    /// Generates a new key from the operating system's randomness.
    pub fn generate(kind: KeyType) -> Self {
        let mut rng = rand::rng();
        match kind {
            KeyType::EcdsaP256 => Self::EcdsaP256(p256::SecretKey::generate_from_rng(&mut rng)),
            KeyType::Ed25519 => Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
            KeyType::X25519 => Self::X25519(x25519_dalek::StaticSecret::random_from_rng(&mut rng)),
        }
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        match self {
            Self::EcdsaP256(_) => KeyType::EcdsaP256,
            Self::Ed25519(_) => KeyType::Ed25519,
            Self::X25519(_) => KeyType::X25519,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::EcdsaP256(k) => PublicKey::EcdsaP256(k.public_key()),
            Self::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            Self::X25519(k) => PublicKey::X25519(x25519_dalek::PublicKey::from(k)),
        }
    }

    /// The key as the device uses it to unwrap image keys (P-256 or X25519), if it can.
    pub fn decryption_key(&self) -> Option<DecryptionKey> {
        match self {
            Self::EcdsaP256(k) => Some(DecryptionKey::EcP256(k.to_nonzero_scalar())),
            Self::X25519(k) => Some(DecryptionKey::X25519(k.clone())),
            Self::Ed25519(_) => None,
        }
    }

    /// Unencrypted PKCS#8 DER, as imgtool's `keygen` writes it.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
        let with_prefix = |prefix: &[u8], key: &[u8; 32]| {
            let mut v = Zeroizing::new(Vec::with_capacity(48));
            v.extend_from_slice(prefix);
            v.extend_from_slice(key);
            v
        };
        Ok(match self {
            Self::EcdsaP256(k) => {
                let doc = k.to_pkcs8_der().map_err(malformed("ECDSA P-256"))?;
                Zeroizing::new(doc.as_bytes().to_vec())
            }
            Self::Ed25519(k) => with_prefix(&ED25519_PKCS8_PREFIX, k.as_bytes()),
            Self::X25519(k) => with_prefix(&X25519_PKCS8_PREFIX, k.as_bytes()),
        })
    }

    /// The private key bytes a bootloader embeds to decrypt images (`imgtool getpriv`):
    /// PKCS#8 DER, or SEC1 DER (`openssl` format, P-256 only); `minimal` drops the optional
    /// public key from P-256 keys (MCUboot's `--minimal`). Ed25519 keys cannot decrypt.
    pub fn decryption_key_der(
        &self,
        format: PrivateFormat,
        minimal: bool,
    ) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
        match (self, format) {
            (Self::Ed25519(_), _) => Err(KeyFileError::UnsupportedAlgorithm {
                what: "ed25519 (cannot decrypt images)".into(),
            }),
            (Self::X25519(_), PrivateFormat::Openssl) => Err(KeyFileError::UnsupportedAlgorithm {
                what: "x25519 in openssl format (use pkcs8)".into(),
            }),
            (Self::X25519(_), PrivateFormat::Pkcs8) => self.to_pkcs8_der(),
            (Self::EcdsaP256(k), format) if minimal => {
                // ECPrivateKey { version 1, privateKey } (+ curve parameters in SEC1 form).
                let d = k.to_bytes();
                let mut ec = Zeroizing::new(vec![0x30, 0x25, 0x02, 0x01, 0x01, 0x04, 0x20]);
                ec.extend_from_slice(&d);
                Ok(match format {
                    PrivateFormat::Pkcs8 => {
                        let mut v = Zeroizing::new(vec![0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13]);
                        v.extend_from_slice(&[
                            0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                        ]);
                        v.extend_from_slice(&P256_OID_DER);
                        v.extend_from_slice(&[0x04, 0x27]);
                        v.extend_from_slice(&ec);
                        v
                    }
                    PrivateFormat::Openssl => {
                        ec[1] = 0x31;
                        ec.extend_from_slice(&[0xa0, 0x0a]);
                        ec.extend_from_slice(&P256_OID_DER);
                        ec
                    }
                })
            }
            (Self::EcdsaP256(_), PrivateFormat::Pkcs8) => self.to_pkcs8_der(),
            (Self::EcdsaP256(k), PrivateFormat::Openssl) => k
                .to_sec1_der()
                .map(|d| Zeroizing::new(d.to_vec()))
                .map_err(|_| KeyFileError::Malformed { what: "SEC1" }),
        }
    }

    /// Unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyFileError> {
        let der = self.to_pkcs8_der()?;
        pem_rfc7468::encode_string("PRIVATE KEY", LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|_| KeyFileError::Malformed { what: "PEM" })
    }

    /// Password-protected PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 with
    /// scrypt and AES-256-CBC), which imgtool (OpenSSL) reads.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<Zeroizing<String>, KeyFileError> {
        let der = self.to_pkcs8_der()?;
        let info = pkcs8::PrivateKeyInfoRef::from_der(&der)
            .map_err(|_| KeyFileError::Malformed { what: "PKCS#8" })?;
        let enc = info
            .encrypt_with_rng(&mut rand::rng(), password)
            .map_err(|_| KeyFileError::Malformed { what: "PKCS#8" })?;
        pem_rfc7468::encode_string("ENCRYPTED PRIVATE KEY", LineEnding::LF, enc.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| KeyFileError::Malformed { what: "PEM" })
    }

    /// Writes the key to `path` (owner-only where the OS allows), protected by `password` when
    /// one is given.
    pub fn save_with_password(
        &self,
        path: &Path,
        password: Option<&[u8]>,
    ) -> Result<(), KeyFileError> {
        let pem = match password {
            Some(pw) => self.to_encrypted_pem(pw)?,
            None => self.to_pkcs8_pem()?,
        };
        write_private(path, pem.as_bytes()).map_err(|source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the PKCS#8 PEM to `path`, readable only by the owner where the OS allows.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let pem = self.to_pkcs8_pem()?;
        write_private(path, pem.as_bytes()).map_err(|source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

/// A public key of a supported type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKey {
    /// ECDSA P-256.
    EcdsaP256(p256::PublicKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// X25519.
    X25519(x25519_dalek::PublicKey),
}

impl PublicKey {
    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        match self {
            Self::EcdsaP256(_) => KeyType::EcdsaP256,
            Self::Ed25519(_) => KeyType::Ed25519,
            Self::X25519(_) => KeyType::X25519,
        }
    }

    /// DER SubjectPublicKeyInfo (imgtool's `get_public_bytes()`; P-256 uncompressed).
    pub fn to_spki_der(&self) -> Vec<u8> {
        match self {
            Self::EcdsaP256(k) => k
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default(),
            Self::Ed25519(k) => [&ED25519_SPKI_PREFIX[..], k.as_bytes()].concat(),
            Self::X25519(k) => [&X25519_SPKI_PREFIX[..], k.as_bytes()].concat(),
        }
    }

    /// PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string("PUBLIC KEY", LineEnding::LF, &self.to_spki_der())
            .unwrap_or_default()
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo: `imgtool getpubhash`.
    pub fn key_hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_spki_der()).into()
    }

    /// The key as a verifier trusts it (signing keys only; not X25519).
    pub fn trusted_key(&self) -> Option<TrustedKey> {
        match self.key_type() {
            KeyType::X25519 => None,
            _ => TrustedKey::from_spki_der(&self.to_spki_der()).ok(),
        }
    }
}

/// The contents of a key file: a private key (which implies its public key) or a public key.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyFile {
    /// A private key.
    Private(PrivateKey),
    /// A public key only.
    Public(PublicKey),
}

impl KeyFile {
    /// Reads a PEM key file.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        })?);
        Self::from_pem(&bytes)
    }

    /// Reads a PEM key file that may be password-protected (`ENCRYPTED PRIVATE KEY`, as
    /// `imgtool keygen -p` writes it).
    pub fn load_with_password(path: &Path, password: Option<&[u8]>) -> Result<Self, KeyFileError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        })?);
        Self::from_pem_with_password(&bytes, password)
    }

    /// Parses PEM: PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or SPKI `PUBLIC KEY`.
    /// A password-protected key gives [`KeyFileError::PasswordRequired`].
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyFileError> {
        Self::from_pem_with_password(pem, None)
    }

    /// [`from_pem`](Self::from_pem), also decrypting `ENCRYPTED PRIVATE KEY` (PKCS#8 PBES2)
    /// with `password`.
    pub fn from_pem_with_password(
        pem: &[u8],
        password: Option<&[u8]>,
    ) -> Result<Self, KeyFileError> {
        let (label, der) = pem_rfc7468::decode_vec(pem).map_err(|_| KeyFileError::NotPem)?;
        let der = Zeroizing::new(der);
        match label {
            "PRIVATE KEY" => parse_pkcs8(&der).map(Self::Private),
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or(KeyFileError::PasswordRequired)?;
                let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der).map_err(|_| {
                    KeyFileError::Malformed {
                        what: "encrypted PKCS#8",
                    }
                })?;
                let plain = info
                    .decrypt(password)
                    .map_err(|_| KeyFileError::BadPassword)?;
                parse_pkcs8(plain.as_bytes()).map(Self::Private)
            }
            "EC PRIVATE KEY" => {
                let key = p256::SecretKey::from_sec1_der(&der).map_err(|_| {
                    KeyFileError::UnsupportedAlgorithm {
                        what: "EC key on a curve other than P-256, or malformed SEC1".into(),
                    }
                })?;
                Ok(Self::Private(PrivateKey::EcdsaP256(key)))
            }
            "PUBLIC KEY" => parse_spki(&der).map(Self::Public),
            other => Err(KeyFileError::UnsupportedLabel {
                label: other.to_owned(),
            }),
        }
    }

    /// The public key (derived from a private key if needed).
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Private(k) => k.public_key(),
            Self::Public(k) => k.clone(),
        }
    }

    /// The private key, or [`KeyFileError::NeedPrivate`].
    pub fn private_key(&self) -> Result<&PrivateKey, KeyFileError> {
        match self {
            Self::Private(k) => Ok(k),
            Self::Public(_) => Err(KeyFileError::NeedPrivate),
        }
    }
}

fn curve_name(params: Option<ObjectIdentifier>) -> String {
    match params.map(|o| o.to_string()).as_deref() {
        Some("1.3.132.0.34") => "ecdsa-p384".into(),
        Some("1.3.132.0.35") => "ecdsa-p521".into(),
        Some(other) => format!("EC curve {other}"),
        None => "EC key without curve".into(),
    }
}

fn parse_pkcs8(der: &[u8]) -> Result<PrivateKey, KeyFileError> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(der)
        .map_err(|_| KeyFileError::Malformed { what: "PKCS#8" })?;
    let (oid, params) = info
        .algorithm
        .oids()
        .map_err(|_| KeyFileError::Malformed { what: "PKCS#8" })?;
    let raw32 = |what: &'static str| -> Result<[u8; 32], KeyFileError> {
        // CurvePrivateKey ::= OCTET STRING (32 bytes), inside the PKCS#8 OCTET STRING.
        let inner = info.private_key.as_bytes();
        match inner {
            [0x04, 0x20, rest @ ..] if rest.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(rest);
                Ok(k)
            }
            _ => Err(KeyFileError::Malformed { what }),
        }
    };
    if oid == OID_EC_PUBLIC_KEY {
        if params != Some(OID_PRIME256V1) {
            return Err(KeyFileError::UnsupportedAlgorithm {
                what: curve_name(params),
            });
        }
        let key = p256::SecretKey::from_pkcs8_der(der).map_err(|_| KeyFileError::Malformed {
            what: "ECDSA P-256",
        })?;
        Ok(PrivateKey::EcdsaP256(key))
    } else if oid == OID_ED25519 {
        let seed = Zeroizing::new(raw32("Ed25519")?);
        Ok(PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )))
    } else if oid == OID_X25519 {
        let k = raw32("X25519")?;
        Ok(PrivateKey::X25519(x25519_dalek::StaticSecret::from(k)))
    } else {
        Err(KeyFileError::UnsupportedAlgorithm {
            what: algorithm_name(oid),
        })
    }
}

fn algorithm_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "rsa".into(),
        "1.3.101.113" => "ed448".into(),
        "1.3.101.111" => "x448".into(),
        other => format!("algorithm {other}"),
    }
}

fn parse_spki(der: &[u8]) -> Result<PublicKey, KeyFileError> {
    let info =
        spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| KeyFileError::Malformed {
            what: "SubjectPublicKeyInfo",
        })?;
    let (oid, params) = info.algorithm.oids().map_err(|_| KeyFileError::Malformed {
        what: "SubjectPublicKeyInfo",
    })?;
    let raw32 = |what: &'static str| -> Result<[u8; 32], KeyFileError> {
        info.subject_public_key
            .as_bytes()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(KeyFileError::Malformed { what })
    };
    if oid == OID_EC_PUBLIC_KEY {
        if params != Some(OID_PRIME256V1) {
            return Err(KeyFileError::UnsupportedAlgorithm {
                what: curve_name(params),
            });
        }
        let key =
            p256::PublicKey::from_public_key_der(der).map_err(|_| KeyFileError::Malformed {
                what: "ECDSA P-256 public",
            })?;
        Ok(PublicKey::EcdsaP256(key))
    } else if oid == OID_ED25519 {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&raw32("Ed25519 public")?).map_err(|_| {
                KeyFileError::Malformed {
                    what: "Ed25519 public",
                }
            })?;
        Ok(PublicKey::Ed25519(key))
    } else if oid == OID_X25519 {
        Ok(PublicKey::X25519(x25519_dalek::PublicKey::from(raw32(
            "X25519 public",
        )?)))
    } else {
        Err(KeyFileError::UnsupportedAlgorithm {
            what: algorithm_name(oid),
        })
    }
}

#[cfg(test)]
mod tests;
