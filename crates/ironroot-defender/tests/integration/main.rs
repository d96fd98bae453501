//! ironroot-defender integration tests: fleets built through the real services (identity,
//! fleet, store, audit) on SQLite and PostgreSQL, each check shown finding a planted
//! misconfiguration, and a clean fleet showing none.

mod harness;

mod ca_checks;
mod clean;
mod device_checks;
mod fleet_checks;
