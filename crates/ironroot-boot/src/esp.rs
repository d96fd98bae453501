//! The ESP32 chain (feature `esp`): ESP-IDF Secure Boot v2 over the same [`Otp`] fuses.
//!
//! On an ESP32-S3/C3/C6/H2 the eFuse holds up to three public-key digests
//! (`KEY_PURPOSE = SECURE_BOOT_DIGEST0..2`) and a revocation bit for each
//! (`SECURE_BOOT_KEY_REVOKE0..2`). The ROM checks the second-stage bootloader and the
//! bootloader checks the application the same way: a block of the image's signature sector
//! counts only if the SHA-256 of the key it carries equals a digest in a slot that is
//! provisioned and not revoked; then its image digest and signature must verify.
//!
//! ```text
//!  Otp key slots 0..3 = eFuse SECURE_BOOT_DIGEST0..2 (+ revoke bits)
//!        │ trusted digests (non-revoked)
//!        ▼
//!  ROM ── verify_signed_image ──> bootloader ── verify_signed_image ──> application
//! ```
//!
//! The model keeps ironroot's fuse map: the first three of its [`KEY_SLOTS`] key-hash slots
//! are the ESP digest slots (a fourth slot is ignored on this chain), revocation is
//! [`Otp::revoke_key`]. The RSA path of `ironroot-esp` needs a heap, so a bootloader built
//! with `esp` provides a global allocator (ESP-IDF's bootloader has one).

use ironroot_esp::{KeyDigest, VerifiedEspImage, VerifyError, verify_signed_image};

use crate::otp::{KEY_SLOTS, Otp, OtpCells};

/// Key-digest slots an ESP32 eFuse has.
pub const ESP_DIGEST_SLOTS: usize = 3;
const _: () = assert!(ESP_DIGEST_SLOTS <= KEY_SLOTS);

/// The digests of slots 0..3 that are provisioned and not revoked, in slot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspTrustedDigests {
    digests: [KeyDigest; ESP_DIGEST_SLOTS],
    len: usize,
}

impl EspTrustedDigests {
    /// Reads the trusted digests from the fuses.
    pub fn from_otp<C: OtpCells>(otp: &Otp<C>) -> Self {
        let mut digests = [KeyDigest([0; 32]); ESP_DIGEST_SLOTS];
        let mut len = 0;
        for slot in (0..ESP_DIGEST_SLOTS).filter_map(|s| otp.key_hash(s)) {
            if !slot.revoked {
                digests[len] = KeyDigest(slot.hash);
                len += 1;
            }
        }
        EspTrustedDigests { digests, len }
    }

    /// The trusted digests.
    pub fn as_slice(&self) -> &[KeyDigest] {
        &self.digests[..self.len]
    }
}

/// Which stage of the ESP chain refused its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EspStage {
    /// The ROM checking the second-stage bootloader.
    Bootloader,
    /// The bootloader checking the application.
    Application,
}

/// An ESP chain refusal: the stage and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspBootError {
    /// The stage whose image was refused.
    pub stage: EspStage,
    /// Why.
    pub reason: VerifyError,
}

impl core::fmt::Display for EspBootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let stage = match self.stage {
            EspStage::Bootloader => "bootloader",
            EspStage::Application => "application",
        };
        write!(f, "esp secure boot refused the {stage}: {}", self.reason)
    }
}

impl core::error::Error for EspBootError {}

/// Both verified stages of a successful ESP boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspBoot {
    /// The bootloader the ROM accepted.
    pub bootloader: VerifiedEspImage,
    /// The application the bootloader accepted.
    pub application: VerifiedEspImage,
}

/// Verifies one signed image (body + 4 KiB signature sector) against the fuses.
pub fn verify_esp_image<C: OtpCells>(
    otp: &Otp<C>,
    image: &[u8],
) -> Result<VerifiedEspImage, VerifyError> {
    verify_signed_image(image, EspTrustedDigests::from_otp(otp).as_slice())
}

/// Runs the ESP chain: the ROM checks `bootloader`, then the bootloader checks `application`,
/// each against the fuses' non-revoked digests. Nothing runs unless both verify.
pub fn esp_boot<C: OtpCells>(
    otp: &Otp<C>,
    bootloader: &[u8],
    application: &[u8],
) -> Result<EspBoot, EspBootError> {
    let trusted = EspTrustedDigests::from_otp(otp);
    let check = |stage, image| {
        verify_signed_image(image, trusted.as_slice())
            .map_err(|reason| EspBootError { stage, reason })
    };
    Ok(EspBoot {
        bootloader: check(EspStage::Bootloader, bootloader)?,
        application: check(EspStage::Application, application)?,
    })
}
