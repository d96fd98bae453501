//! Subcommand groups, one module each.

pub mod ca;
pub mod policy;
