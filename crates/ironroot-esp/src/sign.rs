//! Signing (std): PEM keys, pre-computed (external / HSM) signatures, the signature sector.
//!
//! Keys stay where they live: [`sign_image`] takes [`BlockSigner`]s, which return a signature
//! for a digest. [`SigningKey`] (a PEM file) and [`ExternalSignature`] (espsecure's
//! `--pub-key` + `--signature`) are the two here; an HSM signer implements the same trait.

use ecdsa::{EcdsaCurve, Signature, VerifyingKey};
use elliptic_curve::{
    CurveArithmetic, FieldBytesSize, Generate, SecretKey,
    pkcs8::{DecodePrivateKey, DecodePublicKey},
    sec1::{FromSec1Point, ModulusSize, ToSec1Point},
};
use rsa::{Pss, pkcs1::DecodeRsaPrivateKey};
use sha2::{Sha256, Sha384};

use crate::block::{
    BLOCK_SIZE, EspPublicKey, ImageDigest, MAX_BLOCKS, SECTOR_SIZE, Scheme, SignatureBlock,
    SignatureSector,
};
use crate::error::{KeyError, SignError};
use crate::key::write_le;

/// Produces Secure Boot v2 signatures over an image digest for one public key.
pub trait BlockSigner {
    /// The public key (block form) whose digest the device's eFuse must hold.
    fn public_key(&self) -> EspPublicKey;
    /// Signs the image `body`, whose digest (SHA-256, or SHA-384 for P-384) is `digest`;
    /// returns the block's signature field. Signers that hash themselves (an HSM's
    /// hash-and-sign mechanism) use `body`, the others `digest`.
    fn sign(&self, body: &[u8], digest: &ImageDigest) -> Result<Vec<u8>, SignError>;
}

/// A private signing key read from PEM: RSA-3072 (PKCS#1 or PKCS#8) or ECDSA P-192, P-256,
/// P-384 (SEC1 or PKCS#8) — the formats espsecure reads and writes.
pub struct SigningKey(Inner);

enum Inner {
    Rsa(Box<rsa::PrivateKey>),
    P192(SecretKey<p192::NistP192>),
    P256(SecretKey<p256::NistP256>),
    P384(SecretKey<p384::NistP384>),
}

impl SigningKey {
    /// Reads a PEM private key; a public-key PEM is refused with [`KeyError::PublicOnly`].
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let text = core::str::from_utf8(pem).map_err(|_| KeyError::NotPem)?;
        if text.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(KeyError::PublicOnly);
        }
        let inner = if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            Inner::Rsa(Box::new(
                rsa::PrivateKey::from_pkcs1_pem(text)
                    .map_err(|_| KeyError::Malformed("PKCS#1 RSA key"))?,
            ))
        } else if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            if let Ok(k) = SecretKey::from_sec1_pem(text) {
                Inner::P256(k)
            } else if let Ok(k) = SecretKey::from_sec1_pem(text) {
                Inner::P384(k)
            } else if let Ok(k) = SecretKey::from_sec1_pem(text) {
                Inner::P192(k)
            } else {
                return Err(KeyError::Unsupported {
                    what: "EC key on a curve other than P-192, P-256, P-384",
                });
            }
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            if let Ok(k) = rsa::PrivateKey::from_pkcs8_pem(text) {
                Inner::Rsa(Box::new(k))
            } else if let Ok(k) = SecretKey::from_pkcs8_pem(text) {
                Inner::P256(k)
            } else if let Ok(k) = SecretKey::from_pkcs8_pem(text) {
                Inner::P384(k)
            } else if let Ok(k) = SecretKey::from_pkcs8_pem(text) {
                Inner::P192(k)
            } else {
                return Err(KeyError::Unsupported {
                    what: "PKCS#8 key that is neither RSA nor EC P-192/P-256/P-384",
                });
            }
        } else {
            return Err(KeyError::NotPem);
        };
        let key = SigningKey(inner);
        // RSA keys of other sizes parse; Secure Boot v2 takes 3072 bits only.
        if let Inner::Rsa(k) = &key.0 {
            EspPublicKey::from_rsa(&k.to_public_key()).map_err(|_| KeyError::Unsupported {
                what: "RSA key that is not 3072 bits with a 32-bit exponent",
            })?;
        }
        Ok(key)
    }

    /// A fresh key of `scheme` (espsecure `generate-signing-key`; RSA-3072 takes a while).
    pub fn generate(scheme: Scheme) -> Result<Self, SignError> {
        let mut rng = rand::rng();
        Ok(SigningKey(match scheme {
            Scheme::Rsa3072 => Inner::Rsa(Box::new(
                rsa::PrivateKey::new(&mut rng, 3072).map_err(|_| SignError::Crypto { scheme })?,
            )),
            Scheme::EcdsaP192 => Inner::P192(SecretKey::generate_from_rng(&mut rng)),
            Scheme::EcdsaP256 => Inner::P256(SecretKey::generate_from_rng(&mut rng)),
            Scheme::EcdsaP384 => Inner::P384(SecretKey::generate_from_rng(&mut rng)),
        }))
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        match &self.0 {
            Inner::Rsa(_) => Scheme::Rsa3072,
            Inner::P192(_) => Scheme::EcdsaP192,
            Inner::P256(_) => Scheme::EcdsaP256,
            Inner::P384(_) => Scheme::EcdsaP384,
        }
    }
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SigningKey")
            .field("scheme", &self.scheme())
            .finish_non_exhaustive()
    }
}

impl BlockSigner for SigningKey {
    fn public_key(&self) -> EspPublicKey {
        match &self.0 {
            Inner::Rsa(k) => EspPublicKey::from_rsa(&k.to_public_key()).expect("checked on load"),
            Inner::P192(k) => ec_public(Scheme::EcdsaP192, k),
            Inner::P256(k) => ec_public(Scheme::EcdsaP256, k),
            Inner::P384(k) => ec_public(Scheme::EcdsaP384, k),
        }
    }

    fn sign(&self, _body: &[u8], digest: &ImageDigest) -> Result<Vec<u8>, SignError> {
        let scheme = self.scheme();
        let z = digest.as_bytes();
        let mut ad = [0u8; 32];
        rand::fill(&mut ad);
        // ECDSA: RFC 6979 nonces hedged with fresh randomness (the `ad` input).
        let sig = match &self.0 {
            Inner::Rsa(k) => {
                let be = k
                    .sign_with_rng(&mut rand::rng(), Pss::<Sha256>::new_with_salt(32), z)
                    .map_err(|_| SignError::Crypto { scheme })?;
                return Ok(rsa_field(&be));
            }
            Inner::P192(k) => ec_sign::<_, Sha256>(k, z, &ad),
            Inner::P256(k) => ec_sign::<_, Sha256>(k, z, &ad),
            Inner::P384(k) => ec_sign::<_, Sha384>(k, z, &ad),
        };
        Ok(ecdsa_field(scheme, &sig))
    }
}

/// A signature made elsewhere (an HSM, a signing service) over the image digest, with the
/// public key that made it: espsecure's `--pub-key K --signature S`.
#[derive(Debug, Clone)]
pub struct ExternalSignature {
    key: EspPublicKey,
    field: Vec<u8>,
}

impl ExternalSignature {
    /// `signature` as espsecure takes it: RSA big-endian (384 bytes), ECDSA DER.
    /// Whether it is valid is checked when the block is built.
    pub fn new(key: EspPublicKey, signature: &[u8]) -> Result<Self, KeyError> {
        let bad = KeyError::Malformed("signature is not RSA-3072 (384 bytes) or ECDSA DER");
        let field = match key.scheme() {
            Scheme::Rsa3072 if signature.len() == 384 => rsa_field(signature),
            Scheme::Rsa3072 => return Err(bad),
            Scheme::EcdsaP192 => {
                let s = Signature::<p192::NistP192>::from_der(signature).map_err(|_| bad)?;
                ecdsa_field(key.scheme(), &s.to_bytes())
            }
            Scheme::EcdsaP256 => {
                let s = Signature::<p256::NistP256>::from_der(signature).map_err(|_| bad)?;
                ecdsa_field(key.scheme(), &s.to_bytes())
            }
            Scheme::EcdsaP384 => {
                let s = Signature::<p384::NistP384>::from_der(signature).map_err(|_| bad)?;
                ecdsa_field(key.scheme(), &s.to_bytes())
            }
        };
        Ok(ExternalSignature { key, field })
    }
}

impl BlockSigner for ExternalSignature {
    fn public_key(&self) -> EspPublicKey {
        self.key.clone()
    }

    fn sign(&self, _body: &[u8], _digest: &ImageDigest) -> Result<Vec<u8>, SignError> {
        Ok(self.field.clone())
    }
}

impl EspPublicKey {
    /// An ECDSA public key from an uncompressed SEC1 point (`04 || X || Y`; the curve follows
    /// from the length: 49 bytes P-192, 65 P-256, 97 P-384) — what a PKCS#11 token reports.
    pub fn from_sec1(point: &[u8]) -> Result<Self, KeyError> {
        let bad = KeyError::Malformed("not a point on the curve its length implies");
        match point.len() {
            49 => VerifyingKey::<p192::NistP192>::from_sec1_bytes(point)
                .map(|k| EspPublicKey::from_ecdsa(Scheme::EcdsaP192, &k)),
            65 => VerifyingKey::<p256::NistP256>::from_sec1_bytes(point)
                .map(|k| EspPublicKey::from_ecdsa(Scheme::EcdsaP256, &k)),
            97 => VerifyingKey::<p384::NistP384>::from_sec1_bytes(point)
                .map(|k| EspPublicKey::from_ecdsa(Scheme::EcdsaP384, &k)),
            _ => {
                return Err(KeyError::Unsupported {
                    what: "SEC1 point of another length",
                });
            }
        }
        .map_err(|_| bad)
    }

    /// The public key of a PEM file holding a public key (SPKI) or any private key that
    /// [`SigningKey::from_pem`] reads — espsecure's `--keyfile` for verification and digests.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let text = core::str::from_utf8(pem).map_err(|_| KeyError::NotPem)?;
        if !text.contains("-----BEGIN PUBLIC KEY-----") {
            return Ok(SigningKey::from_pem(pem)?.public_key());
        }
        if let Ok(k) = rsa::PublicKey::from_public_key_pem(text) {
            return EspPublicKey::from_rsa(&k).map_err(|_| KeyError::Unsupported {
                what: "RSA key that is not 3072 bits with a 32-bit exponent",
            });
        }
        if let Ok(k) = elliptic_curve::PublicKey::<p256::NistP256>::from_public_key_pem(text) {
            return Ok(EspPublicKey::from_ecdsa(
                Scheme::EcdsaP256,
                &VerifyingKey::from(&k),
            ));
        }
        if let Ok(k) = elliptic_curve::PublicKey::<p384::NistP384>::from_public_key_pem(text) {
            return Ok(EspPublicKey::from_ecdsa(
                Scheme::EcdsaP384,
                &VerifyingKey::from(&k),
            ));
        }
        if let Ok(k) = elliptic_curve::PublicKey::<p192::NistP192>::from_public_key_pem(text) {
            return Ok(EspPublicKey::from_ecdsa(
                Scheme::EcdsaP192,
                &VerifyingKey::from(&k),
            ));
        }
        Err(KeyError::Unsupported {
            what: "public key that is neither RSA nor EC P-192/P-256/P-384",
        })
    }
}

/// What [`sign_image`] produced.
#[derive(Debug, Clone)]
pub struct SignedImage {
    /// Body (padded to 4 KiB with 0xFF) followed by the 4 KiB signature sector.
    pub bytes: Vec<u8>,
    /// Blocks kept from the input's existing sector (with `append`).
    pub kept: usize,
    /// Blocks added.
    pub added: usize,
}

/// Signs `data` with each signer, one block per signer, as espsecure `sign-data --version 2`.
///
/// Unaligned data is padded with 0xFF to a 4 KiB boundary. With `append`, an aligned input
/// whose last sector starts with valid blocks keeps them and adds the new ones after (up to
/// three in all); without valid blocks the whole input is signed afresh, as espsecure does.
/// Every new block is verified before it is written, so a wrong external signature fails here.
pub fn sign_image(
    data: &[u8],
    signers: &[&dyn BlockSigner],
    append: bool,
) -> Result<SignedImage, SignError> {
    if signers.is_empty() {
        return Err(SignError::NoSigner);
    }
    let mut body = data.to_vec();
    let mut sector = Vec::with_capacity(SECTOR_SIZE);
    if !body.len().is_multiple_of(SECTOR_SIZE) {
        body.resize(body.len().next_multiple_of(SECTOR_SIZE), 0xFF);
    } else if append && body.len() >= SECTOR_SIZE {
        let existing = SignatureSector::parse(&body[body.len() - SECTOR_SIZE..]);
        for block in existing.leading_blocks() {
            sector.extend_from_slice(&block.to_bytes());
        }
        if !sector.is_empty() {
            body.truncate(body.len() - SECTOR_SIZE);
        }
    }
    let kept = sector.len() / BLOCK_SIZE;
    if signers.len() > MAX_BLOCKS - kept {
        return Err(SignError::TooManyBlocks {
            wanted: signers.len(),
            free: MAX_BLOCKS - kept,
        });
    }
    for (index, signer) in signers.iter().enumerate() {
        let key = signer.public_key();
        let digest = ImageDigest::of(key.scheme(), &body);
        let field = signer.sign(&body, &digest)?;
        if field.len() != key.scheme().sig_len()
            || key.verify_field(digest.as_bytes(), &field).is_err()
        {
            return Err(SignError::ExternalSignatureInvalid { index });
        }
        sector.extend_from_slice(&SignatureBlock::from_parts(digest, key, &field).to_bytes());
    }
    sector.resize(SECTOR_SIZE, 0xFF);
    body.extend_from_slice(&sector);
    Ok(SignedImage {
        bytes: body,
        kept,
        added: signers.len(),
    })
}

/// Like [`sign_image`] with pre-computed signatures: espsecure refuses unaligned data there,
/// because the signature was made over the padded bytes.
pub fn sign_image_external(
    data: &[u8],
    signatures: &[ExternalSignature],
    append: bool,
) -> Result<SignedImage, SignError> {
    if !data.len().is_multiple_of(SECTOR_SIZE) {
        return Err(SignError::UnalignedForExternalSignature { len: data.len() });
    }
    let signers: Vec<&dyn BlockSigner> = signatures.iter().map(|s| s as _).collect();
    sign_image(data, &signers, append)
}

fn ec_public<C>(scheme: Scheme, key: &SecretKey<C>) -> EspPublicKey
where
    C: EcdsaCurve + CurveArithmetic,
    C::AffinePoint: ToSec1Point<C> + FromSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    EspPublicKey::from_ecdsa(scheme, &VerifyingKey::from(&key.public_key()))
}

fn ec_sign<C, D>(key: &SecretKey<C>, z: &[u8], ad: &[u8]) -> Vec<u8>
where
    C: EcdsaCurve + CurveArithmetic,
    D: sha2::Digest + sha2::digest::block_api::BlockSizeUser,
{
    let d = key.to_nonzero_scalar();
    let (sig, _) = ecdsa::hazmat::sign_prehashed_rfc6979::<C, D>(&d, z, ad);
    sig.to_bytes().to_vec()
}

/// The block's RSA signature field: the big-endian signature reversed.
fn rsa_field(be: &[u8]) -> Vec<u8> {
    let mut field = be.to_vec();
    field.reverse();
    field
}

/// The block's ECDSA signature field from `r || s` big-endian: each little-endian, zero-padded.
fn ecdsa_field(scheme: Scheme, rs_be: &[u8]) -> Vec<u8> {
    let len = scheme.ec_len();
    let mut field = vec![0u8; scheme.sig_len()];
    write_le(&mut field[..len], &rs_be[..len]);
    write_le(&mut field[len..2 * len], &rs_be[len..2 * len]);
    field
}
