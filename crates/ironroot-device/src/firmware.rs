//! What a device tells the cloud about its firmware after secure boot ([`BootReport`]), and the
//! hook through which the agent confirms a trial image once its health check passed
//! ([`Firmware`]).
//!
//! The report carries the binary measured-boot log of ironroot-boot (base64), so the server can
//! replay it to the reported PCR instead of trusting the summary fields; and every image the
//! bootloader refused (wrong key, downgrade, corrupt), so a refused update becomes an audit
//! entry rather than a silent revert.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ironroot_boot::{BootDecision, MeasurementLog, RefusalReason, Subject};
use ironroot_image::VerifyError;
use serde::{Deserialize, Serialize};

use crate::DeviceError;

/// The largest boot report the server accepts, in bytes of JSON (a full report is ~1.5 KiB).
pub const MAX_BOOT_REPORT: usize = 16 * 1024;

/// What one boot decided, as the device reports it (`POST /api/v1/devices/{id}/boot-report`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootReport {
    /// Version of the running application image (`major.minor.revision+build`); `None` when
    /// nothing was bootable.
    pub firmware_version: Option<String>,
    /// Security counter of the running image (0 when it has none).
    pub security_counter: u32,
    /// The device's anti-rollback floor (OTP counter) when the boot finished.
    pub device_counter: u32,
    /// SHA-256 of the running image's signed part, hex.
    pub image_digest: Option<String>,
    /// KEYHASH (SHA-256 of the signing key), hex.
    pub signer: Option<String>,
    /// True while the image runs on trial after a test swap and is not yet confirmed.
    pub trial: bool,
    /// What the bootloader did to the slots (`no swap`, `test swap`, `test swap refused`...).
    pub action: String,
    /// The measured-boot log as ironroot-boot encodes it, base64; it replays to `pcr`.
    pub measurements: String,
    /// The PCR the measurements extend to, hex.
    pub pcr: String,
    /// Every image refused during this boot, in order.
    pub refused: Vec<RefusedImage>,
}

/// One image the bootloader (or boot ROM) refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedImage {
    /// What was refused: `bootloader`, `primary`, `secondary`, `interrupted_swap`.
    pub subject: String,
    /// Why, as a stable code: `untrusted_key`, `bad_signature`, `rollback`, `hash_mismatch`,
    /// `invalid`, `too_large`, `not_bootable`, `no_decryption_key`, `corrupt_trailer`, ...
    pub reason: String,
    /// The human sentence ironroot-boot gave.
    pub detail: String,
}

/// Hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stable code of a refusal reason (what alarms and audit queries match on).
pub fn refusal_code(reason: &RefusalReason) -> &'static str {
    match reason {
        RefusalReason::Empty => "empty",
        RefusalReason::Unparseable => "unparseable",
        RefusalReason::Invalid(VerifyError::UntrustedKey) => "untrusted_key",
        RefusalReason::Invalid(VerifyError::BadSignature) => "bad_signature",
        RefusalReason::Invalid(VerifyError::MissingSignature) => "unsigned",
        RefusalReason::Invalid(VerifyError::HashMismatch) => "hash_mismatch",
        RefusalReason::Invalid(_) => "invalid",
        RefusalReason::Rollback { .. } => "rollback",
        RefusalReason::TooLarge { .. } | RefusalReason::PrimaryTooLarge { .. } => "too_large",
        RefusalReason::NotBootable => "not_bootable",
        RefusalReason::NoDecryptionKey => "no_decryption_key",
        RefusalReason::CorruptTrailer => "corrupt_trailer",
        _ => "other",
    }
}

fn subject_code(subject: &Subject) -> String {
    match subject {
        Subject::Bootloader => "bootloader".into(),
        Subject::Slot(s) => s.to_string(),
        Subject::InterruptedSwap => "interrupted_swap".into(),
    }
}

impl BootReport {
    /// The report of `decision` (what [`ironroot_boot::Device::power_on`] returned).
    pub fn from_decision(decision: &BootDecision) -> Self {
        let booted = decision.booted();
        let mut log = vec![0u8; decision.measurements.encoded_len()];
        let n = decision.measurements.encode(&mut log).unwrap_or(0);
        log.truncate(n);
        Self {
            firmware_version: booted.map(|b| b.version.to_string()),
            security_counter: booted.map_or(0, |b| b.security_counter),
            device_counter: decision.counter.after,
            image_digest: booted.map(|b| hex(&b.digest)),
            signer: booted.map(|b| hex(&b.signer)),
            trial: booted.is_some_and(|b| b.trial),
            action: decision.action.to_string(),
            measurements: STANDARD.encode(&log),
            pcr: hex(&decision.measurements.pcr()),
            refused: decision
                .refusals()
                .map(|r| RefusedImage {
                    subject: subject_code(&r.subject),
                    reason: refusal_code(&r.reason).to_owned(),
                    detail: r.reason.to_string(),
                })
                .collect(),
        }
    }

    /// Decodes the measured-boot log and checks that it replays to the reported PCR and that
    /// its last application measurement is the reported image: what a verifier does before it
    /// believes the summary fields.
    pub fn verified_log(&self) -> Result<MeasurementLog, DeviceError> {
        let bad = |reason: String| DeviceError::BadInput {
            what: "boot report",
            reason,
        };
        let bytes = STANDARD
            .decode(&self.measurements)
            .map_err(|e| bad(format!("measurements are not base64: {e}")))?;
        let log = MeasurementLog::decode(&bytes).map_err(|e| bad(e.to_string()))?;
        if hex(&log.pcr()) != self.pcr {
            return Err(bad(
                "the measurements do not extend to the reported PCR".into()
            ));
        }
        let app = log
            .entries()
            .filter(|m| m.component == ironroot_boot::measure::Component::Application)
            .last();
        let digest = app.map(|m| hex(&m.digest));
        if digest != self.image_digest {
            return Err(bad(
                "the reported image digest is not the measured application".into(),
            ));
        }
        Ok(log)
    }
}

/// The running firmware as the agent sees it: the report of this boot, and the one write an
/// application makes to its boot state — confirming a trial image after its health check.
///
/// A simulated board implements it over simulated flash; a gateway over its boot partition.
pub trait Firmware: Send {
    /// The report of the last boot.
    fn boot_report(&self) -> BootReport;
    /// Marks the running image good (MCUboot image_ok) so the next boot keeps it; returns the
    /// report as it stands now (`trial` false). Called only once the health check passed.
    fn confirm(&mut self) -> Result<BootReport, DeviceError>;
}
