//! P-256 keys on a PKCS#11 token (an HSM, SoftHSM2, a TPM 2.0 behind tpm2-pkcs11), through
//! `cryptoki`: find, generate, sign, destroy, and ECDH where the token offers
//! `CKM_ECDH1_DERIVE`. The CA (`ironroot-pki`) and devices (`ironroot-element`) both use it.
//!
//! Private keys are generated inside the token with `CKA_SENSITIVE=true` and
//! `CKA_EXTRACTABLE=false` and never leave it. To sign, the message is hashed with SHA-256 here
//! and the token makes a raw `CKM_ECDSA` signature over the digest, whose `r || s` is then
//! DER-encoded: SoftHSM 2.6 rejects `CKM_ECDSA_SHA256`, and every token offers `CKM_ECDSA`.
//!
//! ```text
//!  Token::open(module, token label, PIN) ──┬─▶ generate(label) ─┐
//!   (one context per module per process,   ├─▶ open(label) ─────┴─▶ KeyPair ── sign / ecdh
//!    C_Login once)                         └─▶ destroy(label)        (pool of sessions)
//! ```
#![forbid(unsafe_code)]

mod der;
mod error;
mod pin;
mod token;

pub use cryptoki::object::{AttributeInfo, AttributeType};
pub use der::ecdsa_raw_to_der;
pub use error::Pkcs11Error;
pub use pin::Pin;
pub use token::{KeyPair, KeyProtection, Token};
