//! Secure-boot costs, each against an anchor measured in the same run:
//!
//! - `boot_verify_1MiB`: a full power-on (ROM verifies the bootloader, bootloader verifies a
//!   1 MiB application read from simulated flash through its 1 KiB buffer) against raw SHA-256
//!   of the same bytes and against `ironroot_image::verify` on the image in memory.
//! - `update`: wall time of a test swap per geometry (simulated flash, so this is CPU cost:
//!   copies, hashing, signatures — not flash timing).
//! - Printed before the timings: flash erases, writes and bytes per update path (test swap,
//!   revert, permanent) per geometry and image size, the worst per-sector erase count, and the
//!   anchor: an overwrite-only install (erase + program the image, no way back) through the
//!   same simulated flash.
//!
//! Run: `cargo bench -p ironroot-boot --bench boot`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ironroot_boot::sim::{Power, SimGeometry, SimMemory, SimOtp};
use ironroot_boot::{Action, BootFlash, Device, Layout, Otp, Region, SwapKind};
use ironroot_image::tools::{KeyType, PrivateKey, SecurityCounter, SignOptions, sign};
use ironroot_image::{ImageVersion, TrustedKey, verify};
use sha2::{Digest, Sha256};

struct Geo {
    label: &'static str,
    sector: u32,
    write: u32,
    primary: u32,
    secondary: u32,
}

struct Rig {
    layout: Layout,
    flash: SimMemory,
    otp: SimOtp,
    keys: Vec<TrustedKey>,
}

impl Clone for Rig {
    fn clone(&self) -> Self {
        let power = Power::new();
        let mut flash = self.flash.clone();
        flash.rewire(power.clone());
        let mut otp = self.otp.clone();
        otp.rewire(power);
        Self {
            layout: self.layout,
            flash,
            otp,
            keys: self.keys.clone(),
        }
    }
}

impl Rig {
    fn device(&mut self) -> Device<'_, &mut SimMemory, &mut SimOtp> {
        Device::new(
            &mut self.flash,
            Otp::new(&mut self.otp).unwrap(),
            self.layout,
            &self.keys,
            None,
        )
        .unwrap()
    }
}

fn image(
    key: &PrivateKey,
    v: u8,
    counter: u32,
    len: usize,
    slot: u32,
    write: u32,
    pad: bool,
) -> Vec<u8> {
    let mut o = SignOptions::new(ImageVersion::new(v, 0, 0, 0), 0x200, slot);
    o.pad_header = true;
    o.align = write;
    o.pad = pad;
    o.security_counter = Some(SecurityCounter::Value(counter));
    let fw: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut out = Vec::new();
    sign(std::io::Cursor::new(fw), &mut out, Some(key), None, &o).unwrap();
    out
}

/// A device running image A (`a_len` bytes of firmware) with B waiting for a test swap.
fn rig(key: &PrivateKey, g: &Geo, a_len: usize, b_len: usize, perm: bool) -> Rig {
    let s = g.sector;
    let boot = Region::new(0, 4 * s.max(4096));
    let primary = Region::new(boot.end(), g.primary * s);
    let secondary = Region::new(primary.end(), g.secondary * s);
    let layout = Layout::new(boot, primary, secondary, s, g.write, 0xff, 128, false).unwrap();
    let power = Power::new();
    let mut flash = SimMemory::new(
        SimGeometry {
            erase_size: s,
            write_size: g.write,
            erased: 0xff,
            capacity: secondary.end(),
        },
        power.clone(),
    );
    let keys = vec![key.public_key().trusted_key().unwrap()];
    let mut otp = Otp::new(SimOtp::new(power)).unwrap();
    otp.provision_key_hash(&keys[0].key_hash()).unwrap();
    flash.program_raw(0, &image(key, 0, 0, 1000, 0, g.write, false));
    flash.program_raw(primary.offset, &image(key, 1, 1, a_len, 0, g.write, false));
    let mut r = Rig {
        layout,
        flash,
        otp: otp.into_cells(),
        keys,
    };
    // First boot fuses A's counter; then B arrives and is judged on the next boot.
    r.device().power_on().unwrap();
    let mut b = image(key, 2, 2, b_len, secondary.size, g.write, true);
    if perm {
        let off = b.len() - (layout.trailer.magic_area() + layout.trailer.max_align) as usize;
        b[off] = 1;
    }
    r.flash.program_raw(secondary.offset, &b);
    r
}

/// Counts of one update path.
struct Cost {
    erases: u64,
    writes: u64,
    bytes: u64,
    worst_sector: u32,
}

fn measure(r: &mut Rig, expect: Action) -> Cost {
    let wear0 = r.flash.wear().to_vec();
    r.flash.reset_stats();
    let d = r.device().power_on().unwrap();
    assert_eq!(d.action, expect);
    let st = r.flash.stats();
    let worst = r
        .flash
        .wear()
        .iter()
        .zip(&wear0)
        .map(|(a, b)| a - b)
        .max()
        .unwrap();
    Cost {
        erases: st.erases,
        writes: st.writes,
        bytes: st.write_bytes,
        worst_sector: worst,
    }
}

/// Overwrite-only install of the secondary image into the primary slot, through the same
/// flash and the same 1 KiB buffer: the least any update can cost (and it cannot revert).
fn overwrite_only(r: &mut Rig, len: u32) -> Cost {
    r.flash.reset_stats();
    let s = r.layout.sector_size;
    let sectors = len.div_ceil(s);
    let (p, q) = (r.layout.primary.offset, r.layout.secondary.offset);
    let mut buf = vec![0u8; 1024.min(s as usize)];
    for j in 0..sectors {
        r.flash.erase(p + j * s, p + (j + 1) * s).unwrap();
        let mut off = 0;
        while off < s {
            r.flash.read(q + j * s + off, &mut buf).unwrap();
            if buf.iter().any(|&x| x != 0xff) {
                r.flash.write(p + j * s + off, &buf).unwrap();
            }
            off += buf.len() as u32;
        }
    }
    let st = r.flash.stats();
    Cost {
        erases: st.erases,
        writes: st.writes,
        bytes: st.write_bytes,
        worst_sector: 1,
    }
}

fn geometries() -> [Geo; 4] {
    [
        Geo {
            label: "4k-sectors/w8 (nRF, STM32L4 class)",
            sector: 4096,
            write: 8,
            primary: 67,
            secondary: 66,
        },
        Geo {
            label: "1k-sectors/w4",
            sector: 1024,
            write: 4,
            primary: 129,
            secondary: 128,
        },
        Geo {
            label: "2k-sectors/w32 (ECC flash)",
            sector: 2048,
            write: 32,
            primary: 136,
            secondary: 135,
        },
        Geo {
            label: "64k-sectors/w16 (external QSPI)",
            sector: 65536,
            write: 16,
            primary: 6,
            secondary: 5,
        },
    ]
}

fn print_costs(key: &PrivateKey) {
    eprintln!("\n## flash operations per update (A runs; B is installed)\n");
    eprintln!("| geometry | image | path | erases | writes | KiB written | worst sector erases |");
    eprintln!("|---|---|---|---|---|---|---|");
    for g in geometries() {
        for kib in [64usize, 256] {
            let len = kib * 1024 - 1024;
            let max = {
                let r = rig(key, &g, 1000, 1000, false);
                r.layout.max_image_size() as usize
            };
            if len + 1024 > max {
                continue;
            }
            let row = |path: &str, c: &Cost| {
                eprintln!(
                    "| {} | {kib} KiB | {path} | {} | {} | {} | {} |",
                    g.label,
                    c.erases,
                    c.writes,
                    c.bytes / 1024,
                    c.worst_sector
                );
            };
            let mut r = rig(key, &g, len, len, false);
            let test = measure(&mut r, Action::Swapped(SwapKind::Test));
            row("test swap", &test);
            let revert = measure(&mut r, Action::Swapped(SwapKind::Revert));
            row("revert", &revert);
            let mut r = rig(key, &g, len, len, true);
            let perm = measure(&mut r, Action::Swapped(SwapKind::Perm));
            row("permanent", &perm);
            let mut r = rig(key, &g, len, len, false);
            let anchor = overwrite_only(&mut r, (len + 1024) as u32);
            row("anchor: overwrite-only", &anchor);
        }
    }
    eprintln!();
}

fn benches(c: &mut Criterion) {
    let p256 = PrivateKey::generate(KeyType::EcdsaP256);
    let ed = PrivateKey::generate(KeyType::Ed25519);
    print_costs(&p256);

    // --- boot-time verification of a 1 MiB image ---------------------------------------
    let mut g = c.benchmark_group("boot_verify_1MiB");
    let mib = Geo {
        label: "",
        sector: 4096,
        write: 8,
        primary: 272,
        secondary: 16,
    };
    for (name, key) in [("ecdsa-p256", &p256), ("ed25519", &ed)] {
        let mut r = rig(key, &mib, 1 << 20, 1000, false);
        // Remove the pending update: measure a plain boot.
        let sec = r.layout.secondary;
        r.flash.erase_raw(sec.offset, sec.size);
        let app = r.flash.as_bytes()
            [r.layout.primary.offset as usize..r.layout.primary.end() as usize]
            .to_vec();
        let v = verify(&app[..], &r.keys).unwrap();
        let hashed = &app[..v.hashed_len as usize];
        g.throughput(Throughput::Bytes(v.hashed_len as u64));
        if name == "ecdsa-p256" {
            g.bench_function("anchor: sha256", |b| {
                b.iter(|| black_box(Sha256::digest(black_box(hashed))))
            });
        }
        g.bench_with_input(
            BenchmarkId::new("verify in memory", name),
            &app,
            |b, app| b.iter(|| verify(black_box(&app[..]), &r.keys).unwrap()),
        );
        g.bench_function(
            BenchmarkId::new("power_on (ROM + bootloader, from flash)", name),
            |b| {
                b.iter(|| {
                    let d = r.device().power_on().unwrap();
                    assert_eq!(d.booted().unwrap().digest, v.digest);
                })
            },
        );
    }
    g.finish();

    // --- a test swap, CPU time ----------------------------------------------------------
    let mut g = c.benchmark_group("update");
    g.sample_size(10);
    for geo in [&geometries()[0], &geometries()[1]] {
        let r = rig(&p256, geo, 64 * 1024, 64 * 1024, false);
        g.bench_function(BenchmarkId::new("test swap 64 KiB", geo.label), |b| {
            b.iter_batched(
                || r.clone(),
                |mut r| {
                    let d = r.device().power_on().unwrap();
                    assert_eq!(d.action, Action::Swapped(SwapKind::Test));
                    assert!(d.booted().is_some_and(|b| b.trial));
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(boot, benches);
criterion_main!(boot);
