//! Fuzzes everything that reads untrusted TUF metadata: the envelope and the four roles'
//! parsers, canonical JSON, signature thresholds and the client workflow over a mirror that
//! serves the fuzz input for every file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ironroot_tuf::fuzzing::metadata(data);
});
