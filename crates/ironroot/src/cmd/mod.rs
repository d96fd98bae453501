//! Subcommand groups of the `ironroot` binary, one module each.

pub mod ca;
pub mod device;
pub mod firmware;
pub mod policy;
