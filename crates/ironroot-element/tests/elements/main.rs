//! One `SecureElement` contract, written once in [`contract`] and run against every element:
//! the sealed software element, a SoftHSM2 token and a TPM 2.0 (swtpm behind tpm2-pkcs11).
//!
//! Each contract run makes a key inside the element, checks signatures with aws-lc, has openssl
//! verify a CSR the element signed, completes mutual-TLS handshakes whose client key stays in
//! the element — with a rustls server (TLS 1.3 and 1.2; and one refused when the element's key
//! does not match the certificate) and with `openssl s_server` — then destroys and regenerates
//! the key (rotation).

mod contract;
mod openssl_server;
mod softhsm;
mod software;
mod tpm;
