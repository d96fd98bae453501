//! Scan throughput on a 4 MiB image against raw SHA-256 of the same bytes, measured
//! interleaved (the machine is shared: alternating the two, round after round, and taking the
//! median of per-round ratios is what load shifts affect least).
//!
//! Inputs: random bytes (firmware-like code: no anchors to speak of), a text-heavy image
//! (log strings, paths, a planted key and token every 64 KiB: many anchors), and the first
//! 4 MiB of `/usr/bin/python3` (a real binary) when present, and a hostile image of DER,
//! PEM and OID anchors back to back (the parse budget and finding cap at work).
//!
//! Run: `cargo bench -p ironroot-scan --bench throughput`

use std::hint::black_box;
use std::time::Instant;

use ironroot_scan::Scanner;
use sha2::{Digest, Sha256};

const SIZE: usize = 4 << 20;
const ROUNDS: usize = 30;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn random(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn text_heavy(len: usize) -> Vec<u8> {
    let lines = [
        "[DEBUG] uart0 rx=%d tx=%d\n",
        "/home/builder/fw/src/net/mqtt.c:%d\n",
        "Connecting to broker mqtt.example.net:8883\n",
        "debug: password check failed for user %s\n",
        "sensor temperature=%d.%02d\n",
    ];
    // A key id shape from random base32 characters (nothing token-like is written down).
    let body: String = random(16)
        .iter()
        .map(|b| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[usize::from(b % 32)] as char)
        .collect();
    let token = format!("AKIA{body}");
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while out.len() < len {
        if i % 2000 == 0 {
            out.extend_from_slice(token.as_bytes());
            out.push(0);
        }
        out.extend_from_slice(lines[i % lines.len()].as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Worst case for the structure parsers: DER key and certificate prefixes and PEM headers
/// without bodies, back to back.
fn hostile(len: usize) -> Vec<u8> {
    let mut unit = vec![
        0x30, 0x82, 0x10, 0x00, 0x02, 0x01, 0x00, 0x30, 0x30, 0x81, 0x90,
    ];
    unit.extend_from_slice(&[0x02, 0x01, 0x01, 0x04, 0x20, 0xa0, 0x03, 0x02, 0x01, 0x02]);
    unit.extend_from_slice(b"-----BEGIN PRIVATE KEY-----\n");
    unit.extend_from_slice(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
    unit.iter().copied().cycle().take(len).collect()
}

fn main() {
    let mut inputs = vec![
        ("random", random(SIZE)),
        ("text-heavy", text_heavy(SIZE)),
        ("hostile", hostile(SIZE)),
    ];
    if let Ok(mut real) = std::fs::read("/usr/bin/python3") {
        real.truncate(SIZE);
        inputs.push(("python3 ELF", real));
    }
    let scanner = Scanner::new();
    println!(
        "| input | size | SHA-256 median | scan median | scan MB/s | ratio median (p10-p90) | findings |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, data) in inputs {
        let (mut sha, mut scan, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let mut findings = 0;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            black_box(Sha256::digest(black_box(&data)));
            let s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            findings = black_box(scanner.scan(black_box(&data))).findings.len();
            let v = t.elapsed().as_secs_f64();
            sha.push(s);
            scan.push(v);
            ratio.push(v / s);
        }
        for v in [&mut sha, &mut scan, &mut ratio] {
            v.sort_by(f64::total_cmp);
        }
        let mb = data.len() as f64 / 1e6;
        println!(
            "| {label} | {} KiB | {:.2} ms | {:.2} ms | {:.0} | {:.1} ({:.1}-{:.1}) | {findings} |",
            data.len() / 1024,
            percentile(&sha, 0.5) * 1e3,
            percentile(&scan, 0.5) * 1e3,
            mb / percentile(&scan, 0.5),
            percentile(&ratio, 0.5),
            percentile(&ratio, 0.1),
            percentile(&ratio, 0.9),
        );
    }
}
