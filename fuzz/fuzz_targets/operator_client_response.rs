//! See `ironroot_server::fuzzing::operator_response`: untrusted bytes must give a result or a typed error,
//! never a panic, and the parser's invariants must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ironroot_server::fuzzing::operator_response(data);
});
