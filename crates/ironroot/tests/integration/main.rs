//! End-to-end tests of the `ironroot` binary.

mod device;
