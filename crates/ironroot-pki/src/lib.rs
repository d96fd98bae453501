//! The ironroot certificate authority.
#![forbid(unsafe_code)]
