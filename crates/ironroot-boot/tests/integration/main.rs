//! Integration tests of ironroot-boot: boot paths, refusals, power cuts at every flash
//! operation, imgtool interoperability, and properties of the trailer state machine.

mod boot_paths;
mod esp_chain;
mod imgtool_interop;
mod power_cut;
mod props;
mod support;
