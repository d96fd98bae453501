//! The typed result of a boot: what booted, from where, and why anything else was refused.

use core::fmt;

use ironroot_image::{ImageVersion, VerifyError};

use crate::flash::FlashError;
use crate::layout::Slot;
use crate::measure::MeasurementLog;
use crate::trailer::SwapKind;

/// Why an image was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// No image: the header magic is erased.
    Empty,
    /// The image's structure could not be read.
    Unparseable,
    /// Verification failed: malformed, unsigned, untrusted key, bad hash or signature.
    /// (Flash read errors abort the boot instead; they never appear here.)
    Invalid(VerifyError<FlashError>),
    /// The image's security counter is below the OTP counter: a downgrade.
    Rollback {
        /// The image's security counter.
        image: u32,
        /// The OTP counter.
        floor: u32,
    },
    /// The image is larger than the slots can swap.
    TooLarge {
        /// Image size (header, payload, TLVs).
        size: u32,
        /// Largest swappable image.
        max: u32,
    },
    /// The image in the primary slot is too large to be moved aside, so no swap can start.
    PrimaryTooLarge {
        /// Size of the primary image.
        size: u32,
        /// Largest swappable image.
        max: u32,
    },
    /// The header marks the image as not bootable.
    NotBootable,
    /// The image is encrypted and the device has no decryption key.
    NoDecryptionKey,
    /// The primary trailer records an interrupted swap that cannot be resumed (invalid swap
    /// size, or a status area written out of order): the trailer was tampered with.
    CorruptTrailer,
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no image (slot erased)"),
            Self::Unparseable => f.write_str("image structure could not be read"),
            Self::Invalid(e) => write!(f, "{e}"),
            Self::Rollback { image, floor } => write!(
                f,
                "security counter {image} is below the device's counter {floor} (downgrade refused)"
            ),
            Self::TooLarge { size, max } => write!(
                f,
                "image of {size} bytes is larger than the {max} bytes a swap can move"
            ),
            Self::PrimaryTooLarge { size, max } => write!(
                f,
                "running image of {size} bytes is larger than the {max} bytes a swap can move aside"
            ),
            Self::NotBootable => f.write_str("image is marked non-bootable"),
            Self::NoDecryptionKey => {
                f.write_str("image is encrypted but the device has no decryption key")
            }
            Self::CorruptTrailer => f.write_str(
                "trailer records an interrupted swap that cannot be resumed (tampered trailer)",
            ),
        }
    }
}

/// What a refused image was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The bootloader image (refused by the boot ROM).
    Bootloader,
    /// The image in a slot.
    Slot(Slot),
    /// The interrupted swap recorded in the primary trailer.
    InterruptedSwap,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bootloader => f.write_str("bootloader image"),
            Self::Slot(s) => write!(f, "{s} slot image"),
            Self::InterruptedSwap => f.write_str("interrupted swap"),
        }
    }
}

/// One refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused.
    pub subject: Subject,
    /// The swap it was a candidate for, if any.
    pub request: Option<SwapKind>,
    /// Why.
    pub reason: RefusalReason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.request {
            Some(k) => write!(
                f,
                "{} refused for a {k} swap: {}",
                self.subject, self.reason
            ),
            None => write!(f, "{} refused: {}", self.subject, self.reason),
        }
    }
}

/// Most refusals one boot records.
pub const MAX_REFUSALS: usize = 4;

/// What the bootloader did to the slots during this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Nothing: booted the primary slot as it was.
    None,
    /// Swapped the slots (a new test, permanent or revert swap).
    Swapped(SwapKind),
    /// Finished a swap that power loss had interrupted.
    Resumed(SwapKind),
    /// A swap was requested but its image was refused; nothing was erased or written.
    Refused(SwapKind),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("no swap"),
            Self::Swapped(k) => write!(f, "{k} swap"),
            Self::Resumed(k) => write!(f, "resumed interrupted {k} swap"),
            Self::Refused(k) => write!(f, "{k} swap refused"),
        }
    }
}

/// The image that boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootedImage {
    /// Where it runs from (always the primary slot with swap-move).
    pub slot: Slot,
    /// Its version.
    pub version: ImageVersion,
    /// Its security counter (0 when it has none).
    pub security_counter: u32,
    /// SHA-256 of its signed part (its measurement).
    pub digest: [u8; 32],
    /// KEYHASH of the key that signed it.
    pub signer: [u8; 32],
    /// Its size: header, payload and TLVs.
    pub size: u32,
    /// True when it runs on trial after a test swap: it must confirm itself, or the next
    /// boot reverts to the previous image.
    pub trial: bool,
}

/// The outcome of a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Jump to this image.
    Boot(BootedImage),
    /// Nothing valid to boot: the device halts (see the refusals for why).
    NothingBootable,
}

/// How the OTP security counter changed during the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterChange {
    /// Value at power-on.
    pub before: u32,
    /// Value when the boot finished.
    pub after: u32,
}

/// Everything one boot decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDecision {
    /// What boots.
    pub outcome: Outcome,
    /// What happened to the slots.
    pub action: Action,
    /// The security counter.
    pub counter: CounterChange,
    /// Measurements of every verified stage, for the application.
    pub measurements: MeasurementLog,
    refusals: [Option<Refusal>; MAX_REFUSALS],
}

impl BootDecision {
    pub(crate) fn new(counter: u32) -> Self {
        Self {
            outcome: Outcome::NothingBootable,
            action: Action::None,
            counter: CounterChange {
                before: counter,
                after: counter,
            },
            measurements: MeasurementLog::new(),
            refusals: [None; MAX_REFUSALS],
        }
    }

    pub(crate) fn refuse(
        &mut self,
        subject: Subject,
        request: Option<SwapKind>,
        reason: RefusalReason,
    ) {
        if let Some(slot) = self.refusals.iter_mut().find(|r| r.is_none()) {
            *slot = Some(Refusal {
                subject,
                request,
                reason,
            });
        }
    }

    /// Why images were refused during this boot, in the order it happened.
    pub fn refusals(&self) -> impl Iterator<Item = &Refusal> {
        self.refusals.iter().flatten()
    }

    /// The image that boots, if any.
    pub fn booted(&self) -> Option<&BootedImage> {
        match &self.outcome {
            Outcome::Boot(b) => Some(b),
            Outcome::NothingBootable => None,
        }
    }
}
