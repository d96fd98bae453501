//! Verification: one pass over the hashed region, then the signature check.
//!
//! ```text
//! parse header + TLV areas ──> match KEYHASH/PUBKEY to trusted keys ──> hash pass ──> check hash TLV
//!   (ImageLayout::parse)        (before any hashing: no trusted key,     (SHA-256 always; SHA-512   ──> verify signature
//!                                no work)                                  and Ed25519-pure streams     ──> VerifiedImage
//!                                                                          when the image needs them;
//!                                                                          decrypting when asked)
//! ```

use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::encrypted::{AesKeySize, ImageKey, PayloadDecryptor};
use crate::error::{FormatError, ReadError, UnwrapError, VerifyError};
use crate::header::{ImageFlags, ImageHeader, ImageVersion};
use crate::keys::{KeyAlgorithm, TrustedKey};
use crate::layout::{Dependencies, ImageLayout, MAX_SIGNATURES};
use crate::source::ImageSource;
use crate::tlv::{TlvEntry, TlvType};

/// Size of the stack buffer [`verify`] hashes through when the source is not a slice.
pub const DEFAULT_CHUNK: usize = 1024;

/// Hash algorithm of an image's hash TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-256 (TLV 0x10), the MCUboot default.
    Sha256,
    /// SHA-512 (TLV 0x12), used by imgtool for Ed25519 `--pure` and `--sha 512`.
    Sha512,
}

/// Which kind of signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureKind {
    /// ECDSA P-256 (DER) over the SHA-256 digest.
    EcdsaP256,
    /// Ed25519 over the image digest.
    Ed25519,
    /// Ed25519 over the image itself (SIG_PURE).
    Ed25519Pure,
}

/// An image whose hash and signature checked out against a trusted key.
///
/// Only [`verify`] and [`verify_encrypted`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedImage {
    /// The header.
    pub header: ImageHeader,
    /// The image version (also in `header`).
    pub version: ImageVersion,
    /// The header flags (also in `header`).
    pub flags: ImageFlags,
    /// SHA-256 of header, plaintext payload and protected TLVs: the image's measurement. For
    /// SHA-256 images this equals the hash TLV.
    pub digest: [u8; 32],
    /// Algorithm of the image's hash TLV, if it has one (pure images may not).
    pub hash_algorithm: Option<HashAlgorithm>,
    /// The signature that verified.
    pub signature: SignatureKind,
    /// Index into the trusted-key slice of the key that signed.
    pub key_index: usize,
    /// Security counter from the protected SEC_CNT TLV.
    pub security_counter: Option<u32>,
    /// Dependencies from protected DEPENDENCY TLVs.
    pub dependencies: Dependencies,
    /// Vendor UUID from the protected UUID_VID TLV.
    pub vendor_id: Option<[u8; 16]>,
    /// Image class UUID from the protected UUID_CID TLV.
    pub class_id: Option<[u8; 16]>,
    /// The encryption-key TLV type, when the image carries one.
    pub encryption: Option<TlvType>,
    /// Length of the hashed region (header, payload, protected TLVs).
    pub hashed_len: u32,
    /// Total length: hashed region plus the main TLV area. Bytes beyond (slot padding,
    /// trailer) are not part of the image.
    pub total_len: u32,
}

/// Verifies the image in `src` against `keys`, hashing through a [`DEFAULT_CHUNK`] stack buffer
/// (or in place, for slice sources).
///
/// The bytes are hashed as stored: use this for plaintext images, including images with an
/// encryption flag that a bootloader already decrypted into the primary slot. Use
/// [`verify_encrypted`] for a still-encrypted image.
pub fn verify<S: ImageSource>(
    src: S,
    keys: &[TrustedKey],
) -> Result<VerifiedImage, VerifyError<S::Error>> {
    let mut chunk = [0u8; DEFAULT_CHUNK];
    verify_with_buffer(src, keys, &mut chunk)
}

/// [`verify`] with a caller-provided scratch buffer (any non-empty size).
pub fn verify_with_buffer<S: ImageSource>(
    mut src: S,
    keys: &[TrustedKey],
    chunk: &mut [u8],
) -> Result<VerifiedImage, VerifyError<S::Error>> {
    let layout = ImageLayout::parse(&mut src)?;
    verify_layout(&mut src, &layout, keys, None, chunk)
}

/// Verifies a still-encrypted image: decrypts the payload with `key` while hashing, because
/// the hash and signature cover the plaintext. Nothing is written anywhere.
///
/// Get `key` with [`unwrap_image_key`](crate::unwrap_image_key).
pub fn verify_encrypted<S: ImageSource>(
    mut src: S,
    keys: &[TrustedKey],
    key: &ImageKey,
) -> Result<VerifiedImage, VerifyError<S::Error>> {
    let mut chunk = [0u8; DEFAULT_CHUNK];
    let layout = ImageLayout::parse(&mut src)?;
    let size = AesKeySize::from_flags(layout.header.flags).ok_or(UnwrapError::NotEncrypted)?;
    if size != key.size() {
        return Err(UnwrapError::BadLength {
            kind: layout.encryption.map_or(TlvType::Other(0), |e| e.kind),
            len: u16::try_from(key.size().key_len()).unwrap_or(0),
        }
        .into());
    }
    let mut dec = PayloadDecryptor::new(key);
    verify_layout(&mut src, &layout, keys, Some(&mut dec), &mut chunk)
}

/// A signature that names a trusted key, ready to check.
struct Candidate {
    key_index: usize,
    algorithm: KeyAlgorithm,
    sig: [u8; 128],
    sig_len: usize,
}

/// The running hashes of one pass.
struct Sinks {
    sha256: Sha256,
    sha512: Option<Sha512>,
    pure: [Option<ed25519_dalek::StreamVerifier>; MAX_SIGNATURES],
}

impl Sinks {
    fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
        for v in self.pure.iter_mut().flatten() {
            v.update(data);
        }
    }
}

fn read<S: ImageSource>(
    src: &mut S,
    offset: u32,
    buf: &mut [u8],
) -> Result<(), ReadError<S::Error>> {
    src.read_at(offset, buf)
        .map_err(|error| ReadError::Read { offset, error })
}

/// Feeds `start..end` of the image to `sinks`, decrypting payload bytes when `dec` is given.
fn feed<S: ImageSource>(
    src: &mut S,
    start: u32,
    end: u32,
    payload_start: u32,
    dec: Option<&mut PayloadDecryptor>,
    chunk: &mut [u8],
    sinks: &mut Sinks,
) -> Result<(), ReadError<S::Error>> {
    if dec.is_none()
        && let Some(bytes) = src.as_bytes()
    {
        // In place, no copy. The layout parse checked the bounds; `get` re-checks anyway.
        let region = bytes
            .get(start as usize..end as usize)
            .ok_or(FormatError::Truncated {
                needed: end,
                len: src.len(),
            })?;
        sinks.update(region);
        return Ok(());
    }
    let mut dec = dec;
    let mut pos = start;
    while pos < end {
        let n = chunk.len().min((end - pos) as usize);
        let buf = &mut chunk[..n];
        read(src, pos, buf)?;
        if let Some(d) = dec.as_deref_mut() {
            d.apply(pos - payload_start, buf);
        }
        sinks.update(buf);
        pos += n as u32;
    }
    Ok(())
}

pub(crate) fn verify_layout<S: ImageSource>(
    src: &mut S,
    layout: &ImageLayout,
    keys: &[TrustedKey],
    dec: Option<&mut PayloadDecryptor>,
    chunk: &mut [u8],
) -> Result<VerifiedImage, VerifyError<S::Error>> {
    if chunk.is_empty() {
        // A zero-length buffer would never make progress; refuse rather than loop.
        return Err(FormatError::SizeOverflow.into());
    }
    // 1. Hash TLV.
    let hash_entry: Option<TlvEntry> = layout.hash;
    let hash_algorithm = match hash_entry.map(|e| e.kind) {
        Some(TlvType::Sha256) => Some(HashAlgorithm::Sha256),
        Some(TlvType::Sha512) => Some(HashAlgorithm::Sha512),
        Some(kind) => return Err(VerifyError::UnsupportedHash { kind }),
        None if layout.pure => None,
        None => return Err(VerifyError::MissingHash),
    };

    // 2. Signatures that name a trusted key (before any hashing: untrusted images cost little).
    let mut candidates: [Option<Candidate>; MAX_SIGNATURES] = [None, None, None, None];
    let mut n_candidates = 0;
    let mut first_unsupported: Option<TlvType> = None;
    let mut any_signature = false;
    for slot in layout.signature_slots() {
        any_signature = true;
        let sig_alg = match slot.signature.kind {
            TlvType::EcdsaSig => KeyAlgorithm::EcdsaP256,
            TlvType::Ed25519 => KeyAlgorithm::Ed25519,
            other => {
                first_unsupported.get_or_insert(other);
                continue;
            }
        };
        let Some(key_tlv) = slot.key else { continue };
        let mut kbuf = [0u8; 128];
        let Some(kval) = kbuf.get_mut(..usize::from(key_tlv.len)) else {
            continue; // longer than any key we know: names none of ours
        };
        key_tlv.read_value(src, kval)?;
        let Some(key_index) = keys.iter().position(|k| k.is_named_by(key_tlv.kind, kval)) else {
            continue;
        };
        let mut sig = [0u8; 128];
        let sig_len = usize::from(slot.signature.len);
        slot.signature.read_value(src, &mut sig[..sig_len])?;
        candidates[n_candidates] = Some(Candidate {
            key_index,
            algorithm: sig_alg,
            sig,
            sig_len,
        });
        n_candidates += 1;
    }
    if n_candidates == 0 {
        return Err(if !any_signature {
            VerifyError::MissingSignature
        } else if let (Some(kind), true) = (
            first_unsupported,
            layout
                .signature_slots()
                .all(|s| !matches!(s.signature.kind, TlvType::EcdsaSig | TlvType::Ed25519)),
        ) {
            VerifyError::UnsupportedSignature { kind }
        } else {
            VerifyError::UntrustedKey
        });
    }

    // 3. One pass over the hashed region.
    let mut sinks = Sinks {
        sha256: Sha256::new(),
        sha512: (hash_algorithm == Some(HashAlgorithm::Sha512)).then(Sha512::new),
        pure: [None, None, None, None],
    };
    if layout.pure {
        for (i, c) in candidates.iter().enumerate() {
            let Some(c) = c else { continue };
            if let (TrustedKey::Ed25519(k), KeyAlgorithm::Ed25519) =
                (&keys[c.key_index], c.algorithm)
            {
                let mut s = [0u8; 64];
                s.copy_from_slice(&c.sig[..64]);
                let sig = ed25519_dalek::Signature::from_bytes(&s);
                sinks.pure[i] = k.verifying_key().verify_stream(&sig).ok();
            }
        }
    }
    let header = layout.header;
    let payload_start = u32::from(header.hdr_size);
    let payload_end = header.tlv_offset()?;
    let hashed_len = layout.areas.hashed_len();
    feed(
        src,
        0,
        payload_start,
        payload_start,
        None,
        chunk,
        &mut sinks,
    )?;
    feed(
        src,
        payload_start,
        payload_end,
        payload_start,
        dec,
        chunk,
        &mut sinks,
    )?;
    feed(
        src,
        payload_end,
        hashed_len,
        payload_start,
        None,
        chunk,
        &mut sinks,
    )?;
    let digest: [u8; 32] = sinks.sha256.finalize().into();
    let mut sha512_out = [0u8; 64];
    if let Some(h) = sinks.sha512 {
        sha512_out.copy_from_slice(&h.finalize());
    }

    // 4. The hash TLV must match (also for pure images that carry one, as imgtool checks).
    let mut tlv_hash = [0u8; 64];
    let message: &[u8] = match (hash_entry, hash_algorithm) {
        (Some(e), Some(HashAlgorithm::Sha256)) => {
            e.read_value(src, &mut tlv_hash[..32])?;
            if !bool::from(tlv_hash[..32].ct_eq(&digest)) {
                return Err(VerifyError::HashMismatch);
            }
            &digest
        }
        (Some(e), Some(HashAlgorithm::Sha512)) => {
            e.read_value(src, &mut tlv_hash)?;
            if !bool::from(tlv_hash.ct_eq(&sha512_out)) {
                return Err(VerifyError::HashMismatch);
            }
            &sha512_out
        }
        _ => &[],
    };

    // 5. Signatures, in image order; the first that verifies wins.
    let mut mismatched = 0;
    let mut pure_non_ed = 0;
    let mut verified: Option<(usize, SignatureKind)> = None;
    for (i, c) in candidates.iter().enumerate() {
        let Some(c) = c else { continue };
        let key = &keys[c.key_index];
        if key.algorithm() != c.algorithm {
            mismatched += 1;
            continue;
        }
        let ok = match (key, layout.pure) {
            (TrustedKey::EcdsaP256(k), false) => {
                // ECDSA signs SHA-256 of the image; a SHA-512 image cannot carry one.
                hash_algorithm == Some(HashAlgorithm::Sha256)
                    && crate::ecdsa::verify(k, &digest, &c.sig[..c.sig_len])
            }
            (TrustedKey::EcdsaP256(_), true) => {
                pure_non_ed += 1;
                false
            }
            (TrustedKey::Ed25519(k), false) => {
                let mut s = [0u8; 64];
                s.copy_from_slice(&c.sig[..64]);
                let sig = ed25519_dalek::Signature::from_bytes(&s);
                k.verifying_key().verify_strict(message, &sig).is_ok()
            }
            (TrustedKey::Ed25519(_), true) => sinks.pure[i]
                .take()
                .is_some_and(|v| v.finalize_and_verify().is_ok()),
        };
        if ok {
            let kind = match (c.algorithm, layout.pure) {
                (KeyAlgorithm::EcdsaP256, _) => SignatureKind::EcdsaP256,
                (KeyAlgorithm::Ed25519, false) => SignatureKind::Ed25519,
                (KeyAlgorithm::Ed25519, true) => SignatureKind::Ed25519Pure,
            };
            verified = Some((c.key_index, kind));
            break;
        }
    }
    let Some((key_index, signature)) = verified else {
        return Err(if pure_non_ed == n_candidates {
            VerifyError::PureRequiresEd25519
        } else if mismatched == n_candidates {
            VerifyError::KeyAlgorithmMismatch
        } else {
            VerifyError::BadSignature
        });
    };

    Ok(VerifiedImage {
        header,
        version: header.version,
        flags: header.flags,
        digest,
        hash_algorithm,
        signature,
        key_index,
        security_counter: layout.security_counter,
        dependencies: layout.dependencies,
        vendor_id: layout.vendor_id,
        class_id: layout.class_id,
        encryption: layout.encryption.map(|e| e.kind),
        hashed_len,
        total_len: layout.total_len(),
    })
}

#[cfg(test)]
mod tests;
