//! ironroot-identity integration tests: every test runs against SQLite and PostgreSQL (see
//! `harness`), with a real CA, the real audit log, and openssl as the judge.

mod harness;

mod bad_input;
mod blocking;
mod crash;
mod factory;
mod issuance;
mod revocation;
