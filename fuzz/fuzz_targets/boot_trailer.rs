//! Fuzzes what the bootloader reads from flash it does not control: both slot trailers and the
//! swap-status area, with two valid signed images in place. Whatever the bytes, a boot must not
//! panic, must respect NOR rules, and may only ever boot one of the two signed images — also
//! after the power is cut somewhere in the boot and it is powered on again.
#![no_main]

use std::sync::OnceLock;

use ironroot_boot::sim::{CutMode, Power, SimGeometry, SimMemory, SimOtp};
use ironroot_boot::{Device, Layout, Otp, Region};
use ironroot_image::tools::{KeyType, PrivateKey, SecurityCounter, SignOptions, sign};
use ironroot_image::{ImageVersion, TrustedKey, verify};
use libfuzzer_sys::fuzz_target;

const SECTOR: u32 = 1024;

struct Fixture {
    layout: Layout,
    keys: Vec<TrustedKey>,
    geometry: SimGeometry,
    flash: Vec<u8>,
    otp: Vec<u32>,
    digests: [[u8; 32]; 2],
}

fn image(key: &PrivateKey, version: (u8, u8), counter: u32, len: usize) -> Vec<u8> {
    let mut opts = SignOptions::new(ImageVersion::new(version.0, version.1, 0, 0), 0x100, 0);
    opts.pad_header = true;
    opts.security_counter = Some(SecurityCounter::Value(counter));
    let fw: Vec<u8> = (0..len).map(|i| (i * 7 + counter as usize) as u8).collect();
    let mut out = Vec::new();
    sign(std::io::Cursor::new(fw), &mut out, Some(key), None, &opts).unwrap();
    out
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = PrivateKey::generate(KeyType::Ed25519);
        let trusted = key.public_key().trusted_key().unwrap();
        let layout = Layout::new(
            Region::new(0, 2 * SECTOR),
            Region::new(2 * SECTOR, 8 * SECTOR),
            Region::new(10 * SECTOR, 7 * SECTOR),
            SECTOR,
            4,
            0xff,
            8,
            false,
        )
        .unwrap();
        let power = Power::new();
        let geometry = SimGeometry {
            erase_size: SECTOR,
            write_size: 4,
            erased: 0xff,
            capacity: 17 * SECTOR,
        };
        let mut flash = SimMemory::new(geometry, power.clone());
        let bl = image(&key, (0, 1), 0, 500);
        let a = image(&key, (1, 0), 1, 2500);
        let b = image(&key, (2, 0), 2, 3600);
        flash.program_raw(0, &bl);
        flash.program_raw(layout.primary.offset, &a);
        flash.program_raw(layout.secondary.offset, &b);
        let keys = vec![trusted];
        let digests = [
            verify(&a[..], &keys).unwrap().digest,
            verify(&b[..], &keys).unwrap().digest,
        ];
        let mut otp = Otp::new(SimOtp::new(power)).unwrap();
        otp.provision_key_hash(&keys[0].key_hash()).unwrap();
        Fixture {
            layout,
            keys,
            geometry,
            flash: flash.as_bytes().to_vec(),
            otp: otp.into_cells().words().to_vec(),
            digests,
        }
    })
}

fn boot_once(f: &Fixture, flash: &mut SimMemory, otp: &mut SimOtp) {
    let mut dev = Device::new(
        &mut *flash,
        Otp::new(&mut *otp).unwrap(),
        f.layout,
        &f.keys,
        None,
    )
    .unwrap();
    if let Ok(d) = dev.power_on() {
        if let Some(b) = d.booted() {
            assert!(
                f.digests.contains(&b.digest),
                "booted an image that was never signed"
            );
            assert!(b.security_counter >= d.counter.after);
        }
    }
    assert_eq!(flash.violations(), 0, "NOR rule violated");
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if data.len() < 2 {
        return;
    }
    let power = Power::new();
    let mut flash = SimMemory::from_bytes(f.geometry, power.clone(), f.flash.clone()).unwrap();
    let mut otp = SimOtp::new(power.clone());
    for (i, &w) in f.otp.iter().enumerate() {
        otp.burn_raw(i, w);
    }
    // Bytes 2.. overwrite the trailer sectors of both slots (primary first).
    let body = &data[2..];
    let tp = f.layout.trailer_region(ironroot_boot::Slot::Primary);
    let ts = f.layout.trailer_region(ironroot_boot::Slot::Secondary);
    let n = body.len().min(tp.size as usize);
    flash.program_raw(tp.offset + tp.size - n as u32, &body[..n]);
    if body.len() > n {
        let m = (body.len() - n).min(ts.size as usize);
        flash.program_raw(ts.offset + ts.size - m as u32, &body[n..n + m]);
    }
    // Byte 0: cut the first boot at that operation (0 = no cut); byte 1: torn or not.
    if data[0] != 0 {
        let mode = if data[1] & 1 == 1 {
            CutMode::Torn {
                seed: u64::from(data[1]),
            }
        } else {
            CutMode::Before
        };
        power.arm(u64::from(data[0]), mode);
    }
    boot_once(f, &mut flash, &mut otp);
    power.restore();
    boot_once(f, &mut flash, &mut otp);
    boot_once(f, &mut flash, &mut otp);
});
