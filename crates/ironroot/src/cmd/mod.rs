//! Subcommand groups, one module each.

pub mod ca;
pub mod device;
pub mod policy;
