//! Secure-boot model: OTP fuses, boot ROM and bootloader stages, power-fail-safe swap.
#![no_std]
#![forbid(unsafe_code)]
