//! CA signing keys behind one trait, with a software backend (key decrypted from an
//! [encrypted key file](crate::keyfile)) here and a PKCS#11 backend in [`crate::pkcs11`].
//!
//! CA keys are ECDSA P-256 and sign with SHA-256 (`ecdsa-with-SHA256`): the one algorithm every
//! device TLS stack, MCUboot and webpki agree on.

use std::fmt;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use crate::keyfile::{self, KdfParams, KeyFileError, Passphrase};

/// A CA private key that can sign. Implementations keep the private key where it lives (in
/// process memory, in an HSM) and expose only the public point and a signing operation.
pub trait CaSigner: Send + Sync + fmt::Debug {
    /// The public key as an uncompressed SEC1 point (`04 || X || Y`, 65 bytes for P-256).
    fn public_key(&self) -> &[u8];

    /// Signs `message` with ECDSA P-256 over SHA-256 and returns the DER `ECDSA-Sig-Value`
    /// (the encoding X.509 and CRLs carry).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;

    /// Where the key lives, for messages and logs (never secret): "encrypted file", "PKCS#11
    /// token 'ironroot' key 'intermediate-2'".
    fn describe(&self) -> String;
}

/// Errors from a signing backend. No variant carries key material or PINs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The software key could not be generated, parsed or used.
    #[error("software ECDSA P-256 key operation failed: {0}")]
    Software(&'static str),
    /// The encrypted key file could not be read.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {operation} failed: {source}")]
    Pkcs11 {
        /// What we were doing ("C_Sign", "opening the module", ...).
        operation: &'static str,
        /// The error reported by cryptoki / the token.
        #[source]
        source: cryptoki::error::Error,
    },
    /// The token, or the key on it, was not found or is not usable as a CA key.
    #[error("PKCS#11 {0}")]
    Pkcs11Key(String),
    /// The token returned a signature of the wrong shape.
    #[error("PKCS#11 token returned a {len}-byte ECDSA signature; expected 64 bytes (r || s)")]
    Pkcs11BadSignature {
        /// Length of what the token returned.
        len: usize,
    },
}

/// An ECDSA P-256 key held in process memory (aws-lc). Loaded from, and saved to, an
/// [encrypted key file](crate::keyfile); also used for freshly generated leaf keys (server TLS,
/// operator).
pub struct SoftwareKey {
    pair: EcdsaKeyPair,
    public: Vec<u8>,
}

impl SoftwareKey {
    /// Generates a fresh P-256 key from the system CSPRNG.
    pub fn generate() -> Result<Self, SignerError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| SignerError::Software("key generation"))?;
        Ok(Self::from_pair(pair))
    }

    /// Loads a PKCS#8 (v1 or v2) DER P-256 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SignerError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|_| SignerError::Software("PKCS#8 P-256 key parsing"))?;
        Ok(Self::from_pair(pair))
    }

    /// Decrypts and loads an encrypted key file.
    pub fn open_encrypted(pem_text: &[u8], passphrase: &Passphrase) -> Result<Self, SignerError> {
        let der = keyfile::open(pem_text, passphrase)?;
        Self::from_pkcs8(&der)
    }

    /// Encrypts this key under `passphrase` into the key-file format.
    pub fn to_encrypted(
        &self,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<String, SignerError> {
        let der = self.pkcs8_der()?;
        Ok(keyfile::seal(&der, passphrase, params)?)
    }

    /// The private key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), for leaf keys
    /// that a TLS library must read (server, operator). Wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, SignerError> {
        let der = self.pkcs8_der()?;
        Ok(Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            der.to_vec(),
        ))))
    }

    fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, SignerError> {
        let doc = self
            .pair
            .to_pkcs8v1()
            .map_err(|_| SignerError::Software("PKCS#8 export"))?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    fn from_pair(pair: EcdsaKeyPair) -> Self {
        let public = pair.public_key().as_ref().to_vec();
        Self { pair, public }
    }
}

impl fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKey").finish_non_exhaustive()
    }
}

impl CaSigner for SoftwareKey {
    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&rng, message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| SignerError::Software("signing"))
    }

    fn describe(&self) -> String {
        "software key (decrypted in memory)".to_owned()
    }
}

/// Adapts a [`CaSigner`] to rcgen's `SigningKey`, keeping the backend's typed error (rcgen
/// itself can only report "remote key error").
#[derive(Debug)]
pub(crate) struct RcgenSigner {
    signer: Arc<dyn CaSigner>,
    last_error: Mutex<Option<SignerError>>,
}

impl RcgenSigner {
    pub(crate) fn new(signer: Arc<dyn CaSigner>) -> Self {
        Self {
            signer,
            last_error: Mutex::new(None),
        }
    }

    /// The backend error behind rcgen's `RemoteKeyError`, if one was recorded.
    pub(crate) fn take_error(&self) -> Option<SignerError> {
        self.last_error.lock().ok()?.take()
    }

    pub(crate) fn signer(&self) -> &Arc<dyn CaSigner> {
        &self.signer
    }
}

impl rcgen::PublicKeyData for RcgenSigner {
    fn der_bytes(&self) -> &[u8] {
        self.signer.public_key()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RcgenSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(msg).map_err(|err| {
            if let Ok(mut slot) = self.last_error.lock() {
                *slot = Some(err);
            }
            rcgen::Error::RemoteKeyError
        })
    }
}

pub use ironroot_pkcs11::ecdsa_raw_to_der;

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED_SIGNING, UnparsedPublicKey,
    };

    #[test]
    fn software_key_signatures_verify_and_survive_encryption() {
        let key = SoftwareKey::generate().unwrap();
        let pass = Passphrase::new(b"a long enough passphrase".to_vec()).unwrap();
        let file = key.to_encrypted(&pass, KdfParams::MINIMUM).unwrap();
        let back = SoftwareKey::open_encrypted(file.as_bytes(), &pass).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let sig = back.sign(b"message").unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key())
            .verify(b"message", &sig)
            .unwrap();
        assert!(!format!("{back:?}").contains("pair"));
    }

    /// The r||s → DER conversion, checked against aws-lc's own verifier on many signatures
    /// (covering r or s with a high bit set and with leading zero bytes).
    #[test]
    fn raw_signatures_convert_to_verifiable_der() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let fixed =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let verifier = UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_ASN1,
            fixed.public_key().as_ref().to_vec(),
        );
        for i in 0..300u32 {
            let msg = i.to_be_bytes();
            let raw = fixed.sign(&rng, &msg).unwrap();
            let der = ecdsa_raw_to_der(raw.as_ref()).unwrap();
            verifier.verify(&msg, &der).unwrap();
        }
    }

    #[test]
    fn der_integer_encoding_edges() {
        assert_eq!(
            ecdsa_raw_to_der(&[0x80, 0x01]).unwrap(),
            vec![0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01]
        );
        assert_eq!(
            ecdsa_raw_to_der(&[0x00, 0x00]).unwrap(),
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]
        );
        assert_eq!(
            ecdsa_raw_to_der(&[0x00, 0x7f, 0x00, 0x01]).unwrap(),
            vec![0x30, 0x06, 0x02, 0x01, 0x7f, 0x02, 0x01, 0x01]
        );
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
        assert!(ecdsa_raw_to_der(&[]).is_none());
    }
}
