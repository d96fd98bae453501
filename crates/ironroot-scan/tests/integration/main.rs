//! Integration tests of `ironroot-scan`, in one test binary: the generated test image set
//! (openssl keys and certificates, imgtool images, assembled tokens), real binaries for false
//! positives, and properties.

mod common;
mod mcuboot;
mod planted;
mod props;
mod real_world;
