//! Integration tests of ironroot-image, in one binary. imgtool 2.5 (from the test virtualenv)
//! is the oracle: images go both ways between the tools, keys cross-load, and every class of
//! tampering is shown to both.

mod common;
mod ecdsa_backends;
mod encryption;
mod imgtool_signed;
mod ironroot_signed;
mod keys;
mod props;
mod tamper;
