//! Secure-boot model: OTP fuses, boot ROM and bootloader stages, power-fail-safe swap.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod flash;
pub mod layout;
pub mod otp;
#[cfg(feature = "std")]
pub mod sim;
pub mod swap;
pub mod trailer;
