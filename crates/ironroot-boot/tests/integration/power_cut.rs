//! Power cut at every flash write, sector erase and OTP burn of every update path —
//! test swap, confirm, revert, permanent upgrade — for several geometries and image sizes,
//! then cuts again during the recovery.
//!
//! After each cut the device is powered on again (no cut) and must boot one of the two signed
//! images, never anything else and never one below the OTP counter; the image it runs must be
//! in the primary slot byte for byte, the other one intact in the secondary slot, and the
//! update must either have completed or left the old image in place. Then it is reset once
//! more and judged again, which checks that the trailers it left behind mean the right thing
//! (a trial image reverts, a confirmed one stays).

use ironroot_boot::sim::CutMode;
use ironroot_boot::{BootDecision, BootError, Slot};

use crate::support::{Geo, Img, Keys, Pad, Rig, Spec, sign};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// A runs; B waits with a TEST request; power on.
    TestSwap,
    /// B runs on trial; the application confirms; power on.
    Confirm,
    /// B runs on trial; power on without confirming.
    Revert,
    /// A runs; B waits with a PERM request; power on.
    Permanent,
}

/// What one recovered boot looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    New { trial: bool },
    Old { trial: bool },
}

struct Case<'a> {
    name: String,
    path: Path,
    before: Rig,
    old: &'a Img,
    new: &'a Img,
}

#[derive(Default)]
struct Tally {
    cuts: u64,
    second_cuts: u64,
    /// Outcomes only a torn operation may produce (see `judge`).
    torn_only: u64,
}

fn op(path: Path, rig: &mut Rig) -> Result<(), BootError> {
    if path == Path::Confirm {
        rig.confirm()?;
    }
    rig.boot().map(|_| ())
}

/// Judges a completed boot against the invariants and the path's expectations.
fn judge(
    case: &Case<'_>,
    rig: &Rig,
    d: &BootDecision,
    torn: bool,
    tally: &mut Tally,
    what: &str,
) -> Seen {
    let ctx = || format!("{} / {what}", case.name);
    let b = d.booted().unwrap_or_else(|| {
        panic!(
            "{}: nothing bootable: {:?}",
            ctx(),
            d.refusals().collect::<Vec<_>>()
        )
    });
    assert_eq!(rig.flash.violations(), 0, "{}: NOR rule violated", ctx());
    assert!(
        rig.counter() <= b.security_counter,
        "{}: booted counter {} below OTP {}",
        ctx(),
        b.security_counter,
        rig.counter()
    );
    let (seen, booted, other) = if b.digest == case.new.digest {
        (Seen::New { trial: b.trial }, case.new, case.old)
    } else if b.digest == case.old.digest {
        (Seen::Old { trial: b.trial }, case.old, case.new)
    } else {
        panic!("{}: booted an image that is neither old nor new", ctx());
    };
    assert!(
        rig.holds(Slot::Primary, booted),
        "{}: primary slot differs from the booted image",
        ctx()
    );
    assert!(
        rig.holds_stored(Slot::Secondary, other),
        "{}: the other image is not intact in the secondary slot",
        ctx()
    );
    let expected = match case.path {
        Path::TestSwap => seen == Seen::New { trial: true },
        Path::Confirm => {
            seen == Seen::New { trial: false } && rig.counter() == case.new.counter
                || seen == Seen::Old { trial: false }
        }
        Path::Revert => seen == Seen::Old { trial: false },
        Path::Permanent => seen == Seen::New { trial: false } && rig.counter() == case.new.counter,
    };
    if !expected {
        // What only a torn operation can cause, and why it is still safe:
        // - a torn copy_done at the end of a test swap completes the swap, and the reboot
        //   (before the new image ran) reverts it: the old image stays;
        // - a torn erase of the secondary trailer that leaves its magic but erases image_ok
        //   turns a permanent request into a test (see architecture.md).
        let tolerable = torn
            && match case.path {
                Path::TestSwap => seen == Seen::Old { trial: false },
                Path::Permanent => seen == Seen::New { trial: true },
                Path::Revert => seen == Seen::Old { trial: true },
                Path::Confirm => false,
            };
        assert!(
            tolerable,
            "{}: unexpected outcome {seen:?} (torn: {torn})",
            ctx()
        );
        if std::env::var_os("IRONROOT_CUT_DEBUG").is_some() {
            eprintln!("torn-only: {}: {seen:?}", ctx());
        }
        tally.torn_only += 1;
    }
    seen
}

/// Recovers from a cut: boot, judge; reset once more, judge what the trailers led to.
fn recover(case: &Case<'_>, rig: &mut Rig, torn: bool, tally: &mut Tally, what: &str) {
    let d = rig
        .boot()
        .unwrap_or_else(|e| panic!("{} / {what}: recovery boot failed: {e}", case.name));
    let seen = judge(case, rig, &d, torn, tally, what);
    // The next reset: a trial image reverts to the old one, anything else stays.
    let d2 = rig.boot().unwrap();
    let b2 = d2.booted().expect("second boot");
    let want = match seen {
        Seen::New { trial: true } => case.old.digest,
        Seen::New { trial: false } => case.new.digest,
        Seen::Old { trial: true } => case.new.digest,
        Seen::Old { trial: false } => case.old.digest,
    };
    assert_eq!(
        b2.digest, want,
        "{} / {what}: second reset booted the wrong image after {seen:?}",
        case.name
    );
    assert!(
        !b2.trial || matches!(seen, Seen::Old { trial: true }),
        "{} / {what}",
        case.name
    );
    assert_eq!(rig.flash.violations(), 0);
}

/// Cuts every operation of the path once (both cut modes), and, for `second` of the first
/// cuts, cuts the recovery boot again at `second_points` of its operations (all when None).
fn cut_everything(
    case: &Case<'_>,
    tally: &mut Tally,
    second_every: u64,
    second_points: Option<usize>,
) {
    let mut probe = case.before.clone();
    let start = probe.power.ops();
    op(case.path, &mut probe).unwrap();
    let total = probe.power.ops() - start;
    assert!(total > 0, "{}: the path does nothing", case.name);
    for cut in 1..=total {
        for mode in [CutMode::Before, CutMode::Torn { seed: cut * 7 + 1 }] {
            let torn = matches!(mode, CutMode::Torn { .. });
            let mut rig = case.before.clone();
            rig.power.arm(cut, mode);
            assert!(
                op(case.path, &mut rig).is_err(),
                "{}: cut {cut} did not stop the path",
                case.name
            );
            rig.power.restore();
            tally.cuts += 1;
            let mut fresh = rig.clone();
            recover(
                case,
                &mut fresh,
                torn,
                tally,
                &format!("cut {cut}/{total} {mode:?}"),
            );

            if cut % second_every != 0 && cut != total {
                continue;
            }
            // Cut the recovery itself.
            let mut probe = rig.clone();
            let s = probe.power.ops();
            probe.boot().unwrap();
            let m = probe.power.ops() - s;
            let points: Vec<u64> = match second_points {
                None => (1..=m).collect(),
                Some(n) => {
                    let mut v: Vec<u64> = (0..n as u64)
                        .map(|i| 1 + i * m.saturating_sub(1) / (n as u64 - 1).max(1))
                        .collect();
                    v.dedup();
                    v.retain(|&p| p >= 1 && p <= m);
                    v
                }
            };
            for c2 in points {
                let mut again = rig.clone();
                again.power.arm(c2, mode);
                assert!(again.boot().is_err());
                again.power.restore();
                tally.second_cuts += 1;
                recover(
                    case,
                    &mut again,
                    torn,
                    tally,
                    &format!("cut {cut}/{total} then {c2}/{m} {mode:?}"),
                );
            }
        }
    }
}

/// Runs all four paths for the image pairs on one geometry and reports the cut points.
fn run_geometry(
    label: &str,
    geo: Geo,
    pairs: &[(u32, u32)],
    second_every: u64,
    second_points: Option<usize>,
) {
    run_geometry_with(label, geo, pairs, second_every, second_points, false);
}

/// As [`run_geometry`]; with `encrypted`, A and B are ENC_EC256 images: B is decrypted while
/// it is installed and each image is re-encrypted when it is moved to the secondary slot.
fn run_geometry_with(
    label: &str,
    geo: Geo,
    pairs: &[(u32, u32)],
    second_every: u64,
    second_points: Option<usize>,
    encrypted: bool,
) {
    let keys = Keys::new();
    let mut base = Rig::new(geo, keys.provisioned(), &[&keys.root.trusted]);
    if encrypted {
        base = base.with_decryption(&keys.enc_scalar);
    }
    let enc = |spec: Spec| if encrypted { spec.encrypted() } else { spec };
    let slot = base.layout.secondary.size;
    let max = base.layout.max_image_size();
    let bl = sign(&keys, &keys.root, &geo, 0, &Spec::new("0.1.0", 0, 2000));
    base.put_bootloader(&bl.file);
    // The signing overhead (header + TLVs) to size images that fill the slot.
    let probe = sign(
        &keys,
        &keys.root,
        &geo,
        slot,
        &enc(Spec::new("1.0.0", 1, 1000)),
    );
    let overhead = probe.len - 1000;
    let payload = |len: u32| -> usize {
        // DER ECDSA signatures vary in length (68..=72 bytes): leave room for a longer one
        // than the probe's, so "fills the slot" means within 8 bytes of the maximum.
        (len.min(max) - overhead - 8) as usize
    };
    let mut tally = Tally::default();
    for &(a_len, b_len) in pairs {
        let a = sign(
            &keys,
            &keys.root,
            &geo,
            slot,
            &enc(Spec::new("1.0.0", 1, payload(a_len))),
        );
        let b_test = sign(
            &keys,
            &keys.root,
            &geo,
            slot,
            &enc(Spec::new("2.0.0", 2, payload(b_len)).pad(Pad::Test)),
        );
        let b_perm = sign(
            &keys,
            &keys.root,
            &geo,
            slot,
            &enc(Spec::new("2.0.0", 2, payload(b_len)).pad(Pad::Confirm)),
        );
        assert!(a.len <= max && b_test.len <= max);
        assert!(a.len.max(b_test.len) > max - geo.sector || a_len < max && b_len < max);

        let mut running = base.clone();
        // The running image sits in the primary slot in plaintext (as an install left it).
        running.put_slot(Slot::Primary, &a.plain);
        assert_eq!(running.boot().unwrap().booted().unwrap().digest, a.digest);

        let mut test_pending = running.clone();
        test_pending.put_slot(Slot::Secondary, &b_test.file);
        let mut trial = test_pending.clone();
        let d = trial.boot().unwrap();
        assert_eq!(d.booted().unwrap().digest, b_test.digest);
        assert!(d.booted().unwrap().trial);
        let mut perm_pending = running.clone();
        perm_pending.put_slot(Slot::Secondary, &b_perm.file);

        let cases = [
            (Path::TestSwap, test_pending, &b_test),
            (Path::Confirm, trial.clone(), &b_test),
            (Path::Revert, trial, &b_test),
            (Path::Permanent, perm_pending, &b_perm),
        ];
        for (path, before, new) in cases {
            let case = Case {
                name: format!("{label} {path:?} A={}B B={}B", a.len, new.len),
                path,
                before,
                old: &a,
                new,
            };
            cut_everything(&case, &mut tally, second_every, second_points);
        }
    }
    eprintln!(
        "power-cut {label}: {} cut points, {} second cuts during recovery, {} torn-only outcomes",
        tally.cuts, tally.second_cuts, tally.torn_only
    );
    assert!(tally.cuts > 0);
}

/// 4 KiB sectors, 8-byte writes, erased 0xff; primary one sector larger than secondary
/// (swap-move's optimal layout). Every 12th first cut (and the last) has its recovery cut at
/// every one of its operations.
#[test]
fn power_cut_4k_sectors_write8_optimal_slots() {
    let geo = Geo {
        sector: 4096,
        write: 8,
        erased: 0xff,
        boot_sectors: 1,
        primary_sectors: 7,
        secondary_sectors: 6,
        flash_erase: 0,
    };
    let max = geo.layout().max_image_size();
    run_geometry(
        "4k/w8/ff/7+6",
        geo,
        &[(1000, max), (max, 2 * 4096)],
        12,
        None,
    );
}

/// 1 KiB sectors, 4-byte writes, erased 0x00; equal slots.
#[test]
fn power_cut_1k_sectors_write4_erased_zero_equal_slots() {
    let geo = Geo {
        sector: 1024,
        write: 4,
        erased: 0x00,
        boot_sectors: 4,
        primary_sectors: 12,
        secondary_sectors: 12,
        flash_erase: 0,
    };
    let max = geo.layout().max_image_size();
    run_geometry(
        "1k/w4/00/12=12",
        geo,
        &[(max, max), (1500, 4000)],
        3,
        Some(5),
    );
}

/// 2 KiB sectors, 32-byte writes (the max-align-32 magic, a 7-sector trailer), secondary
/// larger than the primary.
#[test]
fn power_cut_2k_sectors_write32_secondary_larger() {
    let geo = Geo {
        sector: 2048,
        write: 32,
        erased: 0xff,
        boot_sectors: 2,
        primary_sectors: 14,
        secondary_sectors: 16,
        flash_erase: 0,
    };
    let max = geo.layout().max_image_size();
    run_geometry(
        "2k/w32/ff/14<16",
        geo,
        &[(max, 3000), (5000, max)],
        3,
        Some(5),
    );
}

/// 4 KiB sectors made of four 1 KiB erase units, 1-byte writes, a large primary slot and
/// images filling it (a sector erase can be cut between its erase units).
#[test]
fn power_cut_4k_sectors_write1_large_primary() {
    let geo = Geo {
        sector: 4096,
        write: 1,
        erased: 0xff,
        boot_sectors: 1,
        primary_sectors: 12,
        secondary_sectors: 9,
        flash_erase: 1024,
    };
    let max = geo.layout().max_image_size();
    run_geometry("4k(1k erase)/w1/ff/12>9", geo, &[(max, max)], 4, Some(4));
}

/// Encrypted (ENC_EC256) updates: decrypt-while-installing and re-encrypt-while-evicting are
/// cut at every operation too; the secondary slot must always hold the other image in its
/// encrypted form.
#[test]
fn power_cut_encrypted_images_4k_sectors() {
    let geo = Geo {
        sector: 4096,
        write: 8,
        erased: 0xff,
        boot_sectors: 1,
        primary_sectors: 7,
        secondary_sectors: 6,
        flash_erase: 0,
    };
    let max = geo.layout().max_image_size();
    run_geometry_with(
        "enc 4k/w8/ff/7+6",
        geo,
        &[(max, 3 * 4096)],
        6,
        Some(4),
        true,
    );
}
