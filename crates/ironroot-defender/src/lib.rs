//! Fleet defense for ironroot: the configuration audit now; detectors and mitigations later
//! (issue 16).
//!
//! The principal entry point is [`audit::audit_installation`]: it reads one installation — the
//! registry ([`ironroot_store::Store`], SQLite or PostgreSQL), the CA files and the audit key
//! in its data directory — runs every check ([`audit::CheckId::ALL`]) and returns an
//! [`audit::AuditReport`]: findings with a severity, a resource and a stable key, minus those
//! hidden by [`audit::Suppression`]s (counted). [`audit::record_run`] writes the run's counts
//! to the audit log (`defender.audit_run`). `ironroot defend audit` is the CLI over both.
//!
//! ```text
//!   registry ─┐
//!   pki/     ─┼─► Snapshot ──► run (pure checks, thresholds) ──► suppressions ──► AuditReport ──► JSON / text
//!   audit/   ─┘                                                                       └─► defender.audit_run
//! ```
//!
//! Public API: [`audit`] (checks, report, suppressions, thresholds), [`DefenderError`].
#![forbid(unsafe_code)]

pub mod audit;
mod error;

pub use error::DefenderError;
