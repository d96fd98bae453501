//! Tamper-evident audit log (RFC 6962 Merkle tree).
#![forbid(unsafe_code)]
