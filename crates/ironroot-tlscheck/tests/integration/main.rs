//! Integration tests of ironroot-tlscheck: one binary, one module per subject.

mod openssl_servers;
mod properties;
