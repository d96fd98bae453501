//! Subcommand groups of the `ironroot` binary, one module each.

pub mod boot;
pub mod firmware;
