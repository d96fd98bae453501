//! Integration tests of ironroot-audit: one test binary, one module per area.

mod proofs_prop;
mod reader_prop;
mod vectors;
