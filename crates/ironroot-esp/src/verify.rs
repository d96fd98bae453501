//! Verifying an image's signature sector against trusted key digests (eFuse or key files).

use crate::block::{ImageDigest, KeyDigest, SECTOR_SIZE, Scheme, SignatureSector};
use crate::error::VerifyError;
use crate::key::Refusal;

/// An image whose signature sector holds a valid block under a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEspImage {
    /// Slot (0..3) of the block that verified.
    pub block: usize,
    /// Scheme of that block.
    pub scheme: Scheme,
    /// Digest of the key that signed (matches one of the trusted digests).
    pub key_digest: KeyDigest,
    /// Digest of the image body.
    pub image_digest: ImageDigest,
    /// Length of the image body (everything before the signature sector).
    pub body_len: usize,
}

/// Splits a signed image into its body and its trailing 4 KiB signature sector.
pub fn split_signed(image: &[u8]) -> Result<(&[u8], &[u8]), VerifyError> {
    if image.is_empty() || !image.len().is_multiple_of(SECTOR_SIZE) {
        return Err(VerifyError::BadLength { len: image.len() });
    }
    Ok(image.split_at(image.len() - SECTOR_SIZE))
}

/// Verifies a signed image (body + signature sector) against trusted key digests.
///
/// A block counts only if its public key's digest is one of `trusted` — that is how the ESP32
/// ROM and bootloader use the eFuse digests, and why a key file is turned into its digest for
/// the host-side check. Blocks are tried in slot order; the first whose image digest and
/// signature verify wins. When none does, the error names the most telling failure: a
/// trusted block whose digest or signature is wrong beats "no trusted key".
pub fn verify_signed_image(
    image: &[u8],
    trusted: &[KeyDigest],
) -> Result<VerifiedEspImage, VerifyError> {
    let (body, sector) = split_signed(image)?;
    let sector = SignatureSector::parse(sector);
    let mut blocks = 0;
    let mut worst: Option<VerifyError> = None;
    // Each scheme's digest of the body is computed at most once.
    let mut digests: [Option<ImageDigest>; 2] = [None, None];
    for (i, block) in sector.blocks() {
        blocks += 1;
        let key_digest = block.public_key().digest();
        if !trusted.contains(&key_digest) {
            continue;
        }
        let scheme = block.scheme();
        let slot = usize::from(scheme == Scheme::EcdsaP384);
        let digest = *digests[slot].get_or_insert_with(|| ImageDigest::of(scheme, body));
        if digest != *block.image_digest() {
            worst = Some(VerifyError::ImageDigestMismatch { block: i });
            continue;
        }
        match block
            .public_key()
            .verify_field(digest.as_bytes(), block.signature_field())
        {
            Ok(()) => {
                return Ok(VerifiedEspImage {
                    block: i,
                    scheme,
                    key_digest,
                    image_digest: digest,
                    body_len: body.len(),
                });
            }
            Err(Refusal::BadKey) => worst = Some(VerifyError::BadKey { block: i, scheme }),
            Err(Refusal::BadSignature) => {
                worst = Some(VerifyError::BadSignature { block: i, scheme })
            }
        }
    }
    Err(match (worst, sector.first_error()) {
        (Some(err), _) => err,
        (None, Some(first)) if blocks == 0 => VerifyError::NoSignatureBlock { first },
        (None, _) => VerifyError::NoTrustedKey { blocks },
    })
}
