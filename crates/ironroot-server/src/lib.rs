//! The ironroot server: HTTPS APIs and wiring.
#![forbid(unsafe_code)]
