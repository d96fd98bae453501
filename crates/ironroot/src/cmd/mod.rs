//! Subcommand groups, one module each.

pub mod audit;
pub mod ca;
pub mod device;
pub mod policy;
