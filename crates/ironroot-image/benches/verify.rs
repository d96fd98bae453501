//! Verification speed against its anchors, in one run:
//!
//! - `sha256`: raw SHA-256 of exactly the bytes verification hashes (header, payload,
//!   protected TLVs): the floor. Target: verification within 10% of it for 1 MiB and up.
//! - `verify/*`: ironroot verification of Ed25519 and ECDSA P-256 images from memory, and
//!   through a 1 KiB copy buffer as a flash-backed bootloader would read (`chunked-1k`).
//! - `imgtool-verify`: wall time of `imgtool verify -k KEY IMAGE` (a Python process per
//!   call, interpreter start-up included, as a user or CI script experiences it).
//!
//! Run: `cargo bench -p ironroot-image --bench verify` (needs IRONROOT_VENV or .venv for
//! imgtool; set IRONROOT_BENCH_NO_IMGTOOL=1 to skip that anchor).

use std::hint::black_box;
use std::process::Command;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ironroot_image::tools::{KeyType, PrivateKey, SignOptions, sign};
use ironroot_image::{ChunkedOnly, ImageVersion, TrustedKey, verify, verify_with_buffer};
use sha2::{Digest, Sha256};

struct Case {
    label: &'static str,
    image: Vec<u8>,
    hashed_len: usize,
    keys: Vec<TrustedKey>,
    key_pem: tempfile::NamedTempFile,
    image_file: tempfile::NamedTempFile,
}

fn case(label: &'static str, kind: KeyType, size: usize) -> Case {
    let key = PrivateKey::generate(kind);
    let fw: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut o = SignOptions::new(ImageVersion::new(1, 0, 0, 0), 0x200, 0);
    o.pad_header = true;
    let mut image = Vec::new();
    sign(std::io::Cursor::new(&fw), &mut image, Some(&key), None, &o).unwrap();
    let keys = vec![key.public_key().trusted_key().unwrap()];
    let hashed_len = verify(&image[..], &keys).unwrap().hashed_len as usize;
    let key_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_pem.path(), key.public_key().to_pem()).unwrap();
    let image_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(image_file.path(), &image).unwrap();
    Case {
        label,
        image,
        hashed_len,
        keys,
        key_pem,
        image_file,
    }
}

fn bench(c: &mut Criterion) {
    let imgtool = if std::env::var_os("IRONROOT_BENCH_NO_IMGTOOL").is_some() {
        None
    } else {
        Some(ironroot_testkit::tool("imgtool"))
    };
    for (size_label, size) in [("64KiB", 64 << 10), ("1MiB", 1 << 20), ("16MiB", 16 << 20)] {
        let cases = [
            case("ed25519", KeyType::Ed25519, size),
            case("p256", KeyType::EcdsaP256, size),
        ];
        let mut g = c.benchmark_group(format!("verify-{size_label}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 16 << 20 {
            g.sample_size(20);
        }
        let region = &cases[0].image[..cases[0].hashed_len];
        g.bench_function("sha256", |b| b.iter(|| Sha256::digest(black_box(region))));
        for cs in &cases {
            g.bench_function(BenchmarkId::new("verify", cs.label), |b| {
                b.iter(|| verify(black_box(&cs.image[..]), &cs.keys).unwrap())
            });
            g.bench_function(BenchmarkId::new("verify-chunked-1k", cs.label), |b| {
                let mut buf = [0u8; 1024];
                b.iter(|| {
                    verify_with_buffer(ChunkedOnly(black_box(&cs.image[..])), &cs.keys, &mut buf)
                        .unwrap()
                })
            });
        }
        g.finish();
        if let Some(tool) = &imgtool {
            let mut g = c.benchmark_group(format!("imgtool-verify-{size_label}"));
            g.sample_size(10);
            g.throughput(Throughput::Bytes(size as u64));
            for cs in &cases {
                g.bench_function(cs.label, |b| {
                    b.iter(|| {
                        let out = Command::new(tool)
                            .arg("verify")
                            .arg("-k")
                            .arg(cs.key_pem.path())
                            .arg(cs.image_file.path())
                            .output()
                            .unwrap();
                        assert!(out.status.success());
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
