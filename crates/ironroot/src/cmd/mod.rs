//! Subcommand groups of the `ironroot` binary, one module each.

pub mod audit;
pub mod boot;
pub mod ca;
pub mod device;
pub mod firmware;
pub mod policy;
