//! Integration tests of the `ironroot` binary, in one test binary, one module per command
//! group.

mod agent;
mod audit;
mod boot;
mod ca;
mod ca_batch;
mod ca_identity;
mod check_tls;
mod decommission;
mod demo;
mod device;
mod device_lifecycle;
mod factory;
mod firmware;
mod firmware_esp;
mod firmware_scan;
mod fleet_audit;
mod layering;
mod mqtt;
mod policy;
mod simulate;
mod storm;
mod support;
mod up;
mod up_config;
mod up_pkcs11;
