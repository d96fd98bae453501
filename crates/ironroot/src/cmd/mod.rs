//! Subcommand groups of the `ironroot` binary, one module each.

pub mod agent;
pub mod audit;
pub mod boot;
pub mod ca;
pub mod check;
pub mod defend;
pub mod demo;
pub mod device;
pub mod device_fleet;
pub mod device_remote;
pub mod firmware;
pub mod incident;
pub mod mqtt;
pub mod ota;
pub mod policy;
pub mod simulate;
pub mod up;
