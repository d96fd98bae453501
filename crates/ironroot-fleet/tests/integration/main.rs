//! ironroot-fleet integration tests: every test runs on SQLite and on PostgreSQL
//! (`IRONROOT_TEST_PG`; unreachable PostgreSQL fails the test), with the real audit log.

mod harness;

mod changes;
mod incident;
mod lifecycle;
