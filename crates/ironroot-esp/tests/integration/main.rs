//! ironroot-esp integration tests: espsecure (esptool 5) is the oracle in both directions.

mod interop;
mod props;
mod support;
mod tamper;
