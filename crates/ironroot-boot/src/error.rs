//! Errors that stop a boot (as opposed to refused images, which are part of a decision).

use core::fmt;

use crate::flash::FlashError;
use crate::layout::LayoutError;
use crate::measure::LogError;
use crate::otp::OtpError;

/// A failure that aborts a boot or a device operation: the flash or OTP failed (in the
/// simulator: power was cut), or the configuration is unusable. Refused images are not errors;
/// they are reported in the [`BootDecision`](crate::BootDecision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootError {
    /// A flash operation failed.
    Flash(FlashError),
    /// An OTP operation failed.
    Otp(OtpError),
    /// The layout does not fit the flash.
    Layout(LayoutError),
    /// The measurement log overflowed.
    Measurement(LogError),
}

impl From<FlashError> for BootError {
    fn from(e: FlashError) -> Self {
        Self::Flash(e)
    }
}

impl From<OtpError> for BootError {
    fn from(e: OtpError) -> Self {
        Self::Otp(e)
    }
}

impl From<LayoutError> for BootError {
    fn from(e: LayoutError) -> Self {
        Self::Layout(e)
    }
}

impl From<LogError> for BootError {
    fn from(e: LogError) -> Self {
        Self::Measurement(e)
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flash(e) => write!(f, "boot aborted: {e}"),
            Self::Otp(e) => write!(f, "boot aborted: {e}"),
            Self::Layout(e) => write!(f, "unusable flash layout: {e}"),
            Self::Measurement(e) => write!(f, "boot aborted: {e}"),
        }
    }
}

impl core::error::Error for BootError {}
