//! Secure boot for MCUboot-format images: OTP fuses, a boot ROM stage and a bootloader stage,
//! power-fail-safe swap-move updates, anti-rollback and measured boot — `no_std`, no heap,
//! over `embedded-storage`'s NorFlash.
//!
//! The principal type is [`Device`]: flash + [`Otp`] fuses + [`Layout`] + trusted keys.
//! [`Device::power_on`] runs both stages and returns a [`BootDecision`]; the application calls
//! [`Device::confirm`] after its health check.
//!
//! ```text
//!  OTP: key hashes, counter ──┐
//!                             v
//!  boot ROM ── verifies ──> bootloader ── verifies ──> application (primary slot)
//!   (measure)               │  trailers: TEST / PERM / REVERT / resume
//!                           │  swap-move primary <-> secondary, decrypting ENC images
//!                           │  anti-rollback: counter >= OTP on every path
//!                           └─ (measure, raise OTP counter once confirmed)
//! ```
//!
//! # Getting started
//!
//! ```no_run
//! use embedded_storage::nor_flash::NorFlash;
//! use ironroot_boot::{Device, Layout, Nor, Otp, OtpCells, Outcome, Region};
//! use ironroot_image::TrustedKey;
//!
//! /// Runs both boot stages; returns the address to jump to, or `None` to halt.
//! fn boot<F: NorFlash, C: OtpCells>(flash: F, fuses: C, keys: &[TrustedKey]) -> Option<u32> {
//!     // 4 KiB sectors, 8-byte writes: bootloader 64 KiB, primary 260 KiB, secondary 256 KiB.
//!     let layout = Layout::new(
//!         Region::new(0, 0x10000),
//!         Region::new(0x10000, 0x41000),
//!         Region::new(0x51000, 0x40000),
//!         0x1000, 8, 0xff, 128, false,
//!     ).ok()?;
//!     let mut device = Device::new(Nor(flash), Otp::new(fuses).ok()?, layout, keys, None).ok()?;
//!     let decision = device.power_on().ok()?; // Err: flash failure; retry or reset
//!     match decision.outcome {
//!         Outcome::Boot(image) => Some(layout.slot(image.slot).offset),
//!         Outcome::NothingBootable => None,
//!     }
//! }
//! ```
//!
//! With the `esp` feature, [`esp`] runs the ESP32 chain (ESP-IDF Secure Boot v2 signature
//! sectors, three eFuse key digests with revocation) over the same [`Otp`] fuses.
//!
//! With the `std` feature, [`sim`] provides NOR flash and OTP simulators that cut power at
//! any operation, and file-backed variants for the `ironroot boot` commands.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod decision;
pub mod device;
pub mod error;
#[cfg(feature = "esp")]
pub mod esp;
pub mod flash;
mod image;
pub mod layout;
pub mod measure;
pub mod otp;
#[cfg(feature = "std")]
pub mod sim;
pub mod stages;
pub mod swap;
pub mod trailer;

pub use decision::{
    Action, BootDecision, BootedImage, CounterChange, Outcome, Refusal, RefusalReason, Subject,
};
pub use device::{Confirmation, Device, ImageReport, SlotReport, Status, UpdateRequestError};
pub use error::BootError;
pub use flash::{BootFlash, FlashError, FlashOp, Nor, Region};
pub use image::SlotSource;
pub use layout::{Layout, LayoutError, Slot, TrailerLayout};
pub use measure::{Measurement, MeasurementLog};
pub use otp::{Otp, OtpCells, OtpError};
pub use trailer::{Request, SwapKind};
