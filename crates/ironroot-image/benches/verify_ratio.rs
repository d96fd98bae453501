//! Verification time relative to raw SHA-256 of the same bytes, measured interleaved.
//!
//! The development machine is shared, so wall-clock load changes between two criterion
//! benchmarks run seconds apart. This bench alternates the two operations (SHA-256 of the hashed
//! region, then verification of the image) round after round and reports the median of the
//! per-round ratios, which load shifts affect far less.
//!
//! Run: `cargo bench -p ironroot-image --bench verify_ratio`

use std::hint::black_box;
use std::time::Instant;

use ironroot_image::tools::{KeyType, PrivateKey, SignOptions, sign};
use ironroot_image::{ChunkedOnly, ImageVersion, verify, verify_with_buffer};
use sha2::{Digest, Sha256};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    println!("| size | key | path | SHA-256 median | verify median | ratio median (p10-p90) |");
    println!("|---|---|---|---|---|---|");
    for (label, size, rounds) in [
        ("64 KiB", 64 << 10, 400),
        ("1 MiB", 1 << 20, 200),
        ("16 MiB", 16 << 20, 40),
    ] {
        for kind in [KeyType::Ed25519, KeyType::EcdsaP256] {
            let key = PrivateKey::generate(kind);
            let fw: Vec<u8> = (0..size)
                .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let mut o = SignOptions::new(ImageVersion::new(1, 0, 0, 0), 0x200, 0);
            o.pad_header = true;
            let mut image = Vec::new();
            sign(std::io::Cursor::new(&fw), &mut image, Some(&key), None, &o).unwrap();
            let keys = [key.public_key().trusted_key().unwrap()];
            let hashed = verify(&image[..], &keys).unwrap().hashed_len as usize;
            for path in ["in-place", "chunked-1k"] {
                let (mut sha, mut ver, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
                let mut buf = [0u8; 1024];
                for _ in 0..rounds {
                    let t = Instant::now();
                    black_box(Sha256::digest(black_box(&image[..hashed])));
                    let s = t.elapsed().as_secs_f64();
                    let t = Instant::now();
                    if path == "in-place" {
                        black_box(verify(black_box(&image[..]), &keys).unwrap());
                    } else {
                        black_box(
                            verify_with_buffer(ChunkedOnly(black_box(&image[..])), &keys, &mut buf)
                                .unwrap(),
                        );
                    }
                    let v = t.elapsed().as_secs_f64();
                    sha.push(s);
                    ver.push(v);
                    ratio.push(v / s);
                }
                for v in [&mut sha, &mut ver, &mut ratio] {
                    v.sort_by(f64::total_cmp);
                }
                println!(
                    "| {label} | {kind} | {path} | {:.1} µs | {:.1} µs | {:.3} ({:.3}-{:.3}) |",
                    percentile(&sha, 0.5) * 1e6,
                    percentile(&ver, 0.5) * 1e6,
                    percentile(&ratio, 0.5),
                    percentile(&ratio, 0.1),
                    percentile(&ratio, 0.9),
                );
            }
        }
    }
}
