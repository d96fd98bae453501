//! Subcommand groups of the `ironroot` binary, one module each.

pub mod firmware;
