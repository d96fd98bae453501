//! ECDSA P-256 over an image's SHA-256 digest: the DER framing check, then one backend.
//!
//! ```text
//! signature TLV ──> DER framing (short-form length; only zero padding after it) ──> backend
//!                                                     std:    aws-lc-rs, digest verify (~40 µs)
//!                                                     no_std: RustCrypto p256 (~150 µs, no heap)
//! ```
//!
//! Both backends see the same DER bytes and the same 32-byte digest; `ecdsa/tests.rs` signs
//! valid, tampered, wrong-key, high-S and malformed signatures and checks they agree.

/// ECDSA P-256 over a SHA-256 digest, DER signature. Zero bytes after the DER structure are
/// tolerated (imgtool `--pad-sig`, for MCUboot < 1.5); anything else after it is not.
pub(crate) fn verify(key: &crate::keys::EcdsaP256Key, digest: &[u8; 32], sig: &[u8]) -> bool {
    let Some(der) = der_body(sig) else {
        return false;
    };
    #[cfg(feature = "std")]
    {
        aws_lc(key.fast_key(), digest, der)
    }
    #[cfg(not(feature = "std"))]
    {
        rustcrypto(key.verifying_key(), digest, der)
    }
}

/// The DER structure at the start of `sig`, if only zero bytes follow it.
fn der_body(sig: &[u8]) -> Option<&[u8]> {
    let &body_len = sig.get(1)?;
    let der_len = usize::from(body_len) + 2;
    if body_len >= 0x80 || der_len > sig.len() || sig[der_len..].iter().any(|&b| b != 0) {
        return None;
    }
    Some(&sig[..der_len])
}

/// The no_std backend: RustCrypto `p256`, prehash verify.
#[cfg_attr(all(feature = "std", not(test)), allow(dead_code))]
pub(crate) fn rustcrypto(key: &p256::ecdsa::VerifyingKey, digest: &[u8; 32], der: &[u8]) -> bool {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let Ok(der) = p256::ecdsa::DerSignature::from_bytes(der) else {
        return false;
    };
    key.verify_prehash(digest, &der).is_ok()
}

/// A trusted P-256 key parsed once for aws-lc-rs (std only), so a verify does no key parsing.
#[cfg(feature = "std")]
#[derive(Clone)]
pub(crate) struct FastKey(aws_lc_rs::signature::ParsedPublicKey);

#[cfg(feature = "std")]
impl FastKey {
    /// From the uncompressed SEC1 point RustCrypto already validated.
    pub(crate) fn from_uncompressed(point: &[u8; 65]) -> Option<Self> {
        aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            point,
        )
        .ok()
        .map(Self)
    }
}

#[cfg(feature = "std")]
impl core::fmt::Debug for FastKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FastKey(aws-lc-rs)")
    }
}

#[cfg(feature = "std")]
impl PartialEq for FastKey {
    /// Always equal: a `FastKey` is a function of the point its owner already compares.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(feature = "std")]
impl Eq for FastKey {}

/// The std backend: aws-lc-rs, verifying the digest the hash pass produced (no re-hash).
#[cfg(feature = "std")]
pub(crate) fn aws_lc(key: &FastKey, digest: &[u8; 32], der: &[u8]) -> bool {
    let Ok(digest) =
        aws_lc_rs::digest::Digest::import_less_safe(digest, &aws_lc_rs::digest::SHA256)
    else {
        return false;
    };
    key.0.verify_digest_sig(&digest, der).is_ok()
}

#[cfg(test)]
mod tests;
