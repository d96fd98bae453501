//! MQTT topic names, topic filters, client ids and serials from untrusted clients: validation
//! never panics, and the subscription trie and retained store agree with the reference matcher
//! on every routing decision (a disagreement would deliver a message a filter does not cover).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ironroot_broker::fuzzing::routing(data);
    ironroot_broker::fuzzing::certificate_identity(data);
});
