//! Integration tests of ironroot-pki against real oracles: openssl (req, verify, x509),
//! rustls handshakes over real TCP sockets, and SoftHSM2 for the PKCS#11 backend.

mod common;
mod csr_oracle;
mod handshake;
mod openssl_verify;
mod pkcs11_softhsm;
mod rotation;
