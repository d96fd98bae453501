//! End-to-end tests of the provisioning server over real HTTPS, with curl and openssl as the
//! clients, on SQLite and PostgreSQL.

mod harness;
mod ocsp;
mod openapi;
mod operator_errors;
mod provisioning;
mod refusals;
