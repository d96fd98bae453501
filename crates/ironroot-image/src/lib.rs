//! MCUboot-compatible firmware images.
//!
//! The verification path is `no_std` and allocates nothing, so a bootloader can embed it.
#![no_std]
#![forbid(unsafe_code)]
