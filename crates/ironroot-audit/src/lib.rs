//! Tamper-evident audit log (RFC 6962 Merkle tree).
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod event;
pub mod hash;
pub mod note;
pub mod proof;
pub mod tile;
pub mod time;
pub mod tree;
