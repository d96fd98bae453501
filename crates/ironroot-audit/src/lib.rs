//! Tamper-evident audit log (RFC 6962 Merkle tree).
#![forbid(unsafe_code)]

pub mod hash;
pub mod proof;
pub mod tile;
pub mod tree;
pub mod event;
pub mod time;
