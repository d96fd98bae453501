//! Static secret and weakness scanner for firmware binaries: raw images, MCUboot images and
//! ESP application images.
//!
//! The principal type is [`Scanner`]: [`Scanner::scan`] takes the bytes of a file and returns
//! a [`Report`] of [`Finding`]s, each with a [`FindingKind`], a [`Severity`], the file offset
//! and length, and a `detail` that never contains the secret (a type prefix and a SHA-256
//! fingerprint at most: reports land in CI logs).
//!
//! ```text
//!  file bytes ──> Container::detect (MCUboot via ironroot-image, ESP, raw)
//!       │
//!       ├─> keys:  PEM blocks, DER PKCS#8 / SEC1 / PKCS#1 / X.509 (parsed, not pattern-matched)
//!       │          └─> certificate + its private key = identity baked in
//!       ├─> ec:    raw P-256 scalars next to the curve OID
//!       ├─> text:  one Aho-Corasick pass: tokens (AWS, GitHub, Slack, Google, JWT, bearer),
//!       │          passwords, default credentials, crypt hashes, debug/UART/JTAG, build paths
//!       └─> weak:  MD5 / SHA-1 / DES constant tables
//!                        │
//!                        ▼
//!               Report { container, findings (by offset), truncated }
//! ```
//!
//! Time and memory are linear in the input: every detector is one pass plus bounded work
//! per anchor, structural parse attempts have a budget, and findings are capped.
//!
//! # Getting started
//!
//! ```
//! use ironroot_scan::{FindingKind, Scanner, Severity};
//!
//! let mut image = vec![0u8; 4096];
//! // An access key id shape assembled at run time from clock-derived base32 characters
//! // (no token, real or fake, is written down).
//! let mut x = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
//! let body: String = (0..16)
//!     .map(|_| {
//!         x ^= x << 13; x ^= x >> 7; x ^= x << 17;
//!         b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[(x % 32) as usize] as char
//!     })
//!     .collect();
//! let planted = format!("AKIA{body}");
//! image[1000..1020].copy_from_slice(planted.as_bytes());
//! let report = Scanner::new().scan(&image);
//! let f = &report.findings[0];
//! assert_eq!((f.kind, f.severity, f.offset), (FindingKind::AwsAccessKeyId, Severity::High, 1000));
//! assert!(!f.detail.contains(&planted));
//! assert!(report.fails(Severity::High));
//! ```
//!
//! # Public API
//!
//! - [`Scanner`]: `new`, `min_severity`, `max_findings`, `scan`.
//! - [`Report`]: `container`, `scanned_len`, `findings`, `truncated`; `max_severity`,
//!   `at_least`, `fails` (the CI gate).
//! - [`Finding`], [`FindingKind`], [`Severity`] (`info < low < medium < high < critical`,
//!   parsed by `FromStr` with [`ParseSeverityError`]).
//! - [`Container`] and [`Region`]: what the file was recognised as.
//! - [`P256_OID_DER`]: the curve OID bytes the raw-scalar detector keys on.
#![forbid(unsafe_code)]

mod container;
mod ec;
mod finding;
mod keys;
mod scanner;
mod text;
mod text_debug;
mod text_password;
mod text_rules;
mod weak;

pub use container::{Container, Region};
pub use ec::P256_OID_DER;
pub use finding::{Finding, FindingKind, ParseSeverityError, Report, Severity};
pub use keys::{MAX_DER, MAX_PEM};
pub use scanner::{DEFAULT_MAX_FINDINGS, Scanner};
pub use text::MAX_PER_RULE;
