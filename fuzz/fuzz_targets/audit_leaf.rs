//! Audit leaf decoding: never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use ironroot_audit::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::decode(data) {
        assert_eq!(event.encode().expect("decoded events re-encode"), data);
    }
});
