//! Integration tests of ironroot-audit: one test binary, one module per area. The storage,
//! writer and tamper suites run on every backend (memory, SQLite, PostgreSQL; see `backend`).

mod backend;

mod crash;
mod open_store;
mod proofs_prop;
mod reader_prop;
mod tamper;
mod vectors;
mod writer;
