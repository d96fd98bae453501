//! Integration tests of ironroot-image: interop with imgtool 2.5 as the oracle, in one binary.
