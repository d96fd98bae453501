//! Signing metadata (std): the [`Signer`] trait, key files (PKCS#8 PEM as `ironroot firmware
//! keygen` writes them) and, with the `pkcs11` feature, P-256 keys on a PKCS#11 token.

use std::path::Path;

use ironroot_image::tools::{KeyFile, PrivateKey, PublicKey};
use p256::elliptic_curve::sec1::ToSec1Point as _;

use crate::key::Key;
use crate::repo::RepoError;

/// Something that signs TUF metadata: the canonical bytes of `signed` in, the signature
/// bytes (Ed25519 raw, ECDSA P-256 DER over SHA-256) out.
pub trait Signer {
    /// The public key, as metadata lists it.
    fn key(&self) -> &Key;
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RepoError>;
}

/// A signer over a private key loaded from a PEM file.
pub struct KeyFileSigner {
    key: Key,
    private: PrivateKey,
}

impl std::fmt::Debug for KeyFileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFileSigner({})", self.key.key_id())
    }
}

/// The TUF key of a public key from `ironroot_image` (Ed25519 or P-256).
pub fn tuf_key(public: &PublicKey) -> Result<Key, RepoError> {
    match public {
        PublicKey::Ed25519(k) => Ok(Key::ed25519(k.as_bytes())?),
        PublicKey::EcdsaP256(k) => Ok(Key::ecdsa_p256(k.to_sec1_point(false).as_bytes())?),
        _ => Err(RepoError::Key(
            "only ed25519 and ecdsa-p256 keys sign TUF metadata".into(),
        )),
    }
}

/// The TUF key of a key file (public or private PEM).
pub fn key_from_file(path: &Path) -> Result<Key, RepoError> {
    let file =
        KeyFile::load(path).map_err(|e| RepoError::Key(format!("{}: {e}", path.display())))?;
    tuf_key(&file.public_key())
}

impl KeyFileSigner {
    /// Loads an unencrypted PKCS#8 (or SEC1) private key file.
    pub fn load(path: &Path) -> Result<Self, RepoError> {
        let file =
            KeyFile::load(path).map_err(|e| RepoError::Key(format!("{}: {e}", path.display())))?;
        match file {
            KeyFile::Private(private) => Self::new(private),
            _ => Err(RepoError::Key(format!(
                "{}: holds no private key",
                path.display()
            ))),
        }
    }

    /// A signer over `private`.
    pub fn new(private: PrivateKey) -> Result<Self, RepoError> {
        Ok(Self {
            key: tuf_key(&private.public_key())?,
            private,
        })
    }
}

impl Signer for KeyFileSigner {
    fn key(&self) -> &Key {
        &self.key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RepoError> {
        match &self.private {
            PrivateKey::Ed25519(sk) => {
                use ed25519_dalek::Signer as _;
                Ok(sk.sign(message).to_bytes().to_vec())
            }
            PrivateKey::EcdsaP256(sk) => {
                use p256::ecdsa::signature::Signer as _;
                let signing = p256::ecdsa::SigningKey::from(sk);
                let sig: p256::ecdsa::Signature = signing.sign(message);
                Ok(sig.to_der().as_bytes().to_vec())
            }
            _ => Err(RepoError::Key("key type cannot sign TUF metadata".into())),
        }
    }
}

/// A signer over a P-256 key on a PKCS#11 token (HSM, SoftHSM2, tpm2-pkcs11).
#[cfg(feature = "pkcs11")]
pub struct Pkcs11Signer {
    key: Key,
    pair: ironroot_pkcs11::KeyPair,
}

#[cfg(feature = "pkcs11")]
impl Pkcs11Signer {
    /// A signer over an opened token key.
    pub fn new(pair: ironroot_pkcs11::KeyPair) -> Result<Self, RepoError> {
        Ok(Self {
            key: Key::ecdsa_p256(pair.public_key())?,
            pair,
        })
    }
}

#[cfg(feature = "pkcs11")]
impl Signer for Pkcs11Signer {
    fn key(&self) -> &Key {
        &self.key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RepoError> {
        self.pair
            .sign(message)
            .map_err(|e| RepoError::Sign(e.to_string()))
    }
}
