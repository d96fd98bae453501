//! Host simulation of a device's storage (feature `std`): NOR flash that enforces NOR rules and
//! counts operations, OTP fuses, and a power rail that can cut power at any operation.
//!
//! ```text
//!            Power (shared rail: numbers every write, sector erase and fuse burn; cuts one)
//!              |                         |
//!   SimFlash<ERASE, WRITE>  (NorFlash)   SimOtp (OtpCells)
//!        wraps SimMemory  (BootFlash, run-time geometry, file-backed as FileFlash)
//! ```

mod memory;
mod otp;
mod power;

pub use memory::{FileFlash, FlashStats, SimError, SimFlash, SimGeometry, SimMemory};
pub use otp::SimOtp;
pub use power::{CutMode, Power};
