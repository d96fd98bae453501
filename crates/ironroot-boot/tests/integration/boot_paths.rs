//! Every boot path once, with the decision it must produce: first boot, test swap and revert,
//! confirm, permanent upgrade, refusals that leave the flash untouched, anti-rollback.

use ironroot_boot::measure::{Component, Stage};
use ironroot_boot::{
    Action, Confirmation, MeasurementLog, Outcome, RefusalReason, Slot, Subject, SwapKind,
};
use ironroot_image::VerifyError;

use crate::support::{Geo, Img, Keys, Pad, Rig, Spec, booted_digest, sign};

pub fn geo() -> Geo {
    Geo {
        sector: 4096,
        write: 8,
        erased: 0xff,
        boot_sectors: 4,
        primary_sectors: 17,
        secondary_sectors: 16,
        flash_erase: 0,
    }
}

/// A device running A (v1.0.0, counter 1) with a valid bootloader.
pub struct World {
    pub keys: Keys,
    pub geo: Geo,
    pub rig: Rig,
    pub bl: Img,
    pub a: Img,
}

impl World {
    pub fn new() -> Self {
        let keys = Keys::new();
        let geo = geo();
        let mut rig = Rig::new(
            geo,
            keys.provisioned(),
            &[&keys.root.trusted, &keys.ed.trusted],
        );
        let bl = sign(&keys, &keys.root, &geo, 0, &Spec::new("0.1.0", 0, 3000));
        let a = sign(
            &keys,
            &keys.root,
            &geo,
            rig.layout.secondary.size,
            &Spec::new("1.0.0", 1, 10_000),
        );
        rig.put_bootloader(&bl.file);
        rig.put_slot(Slot::Primary, &a.file);
        Self {
            keys,
            geo,
            rig,
            bl,
            a,
        }
    }

    /// Signs an application image for the secondary slot with the root key.
    pub fn app(&self, spec: &Spec) -> Img {
        sign(
            &self.keys,
            &self.keys.root,
            &self.geo,
            self.rig.layout.secondary.size,
            spec,
        )
    }
}

#[test]
fn first_boot_measures_both_stages_and_fuses_the_counter() {
    let mut w = World::new();
    assert_eq!(w.rig.counter(), 0);
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::None);
    let b = d.booted().expect("A boots");
    assert_eq!(b.digest, w.a.digest);
    assert_eq!(b.slot, Slot::Primary);
    assert!(!b.trial);
    // A has no trailer: permanent, so its counter is fused.
    assert_eq!((d.counter.before, d.counter.after), (0, 1));
    let entries: Vec<_> = d.measurements.entries().copied().collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0].stage, entries[0].component),
        (Stage::Rom, Component::Bootloader)
    );
    assert_eq!(entries[0].digest, w.bl.digest);
    assert_eq!(
        (entries[1].stage, entries[1].component),
        (Stage::Bootloader, Component::Application)
    );
    assert_eq!(entries[1].digest, w.a.digest);
    assert_eq!(entries[1].signer, w.keys.root.trusted.key_hash());
    assert_eq!(MeasurementLog::replay(&entries), d.measurements.pcr());
    // The application reads the log from shared memory and can check it.
    let mut shared = [0u8; ironroot_boot::measure::MAX_ENCODED_LEN];
    let n = d.measurements.encode(&mut shared).unwrap();
    assert_eq!(
        MeasurementLog::decode(&shared[..n]).unwrap(),
        d.measurements
    );
    assert_eq!(w.rig.flash.violations(), 0);
}

#[test]
fn test_swap_runs_the_new_image_on_trial_and_reverts_when_not_confirmed() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Test));
    w.rig.put_slot(Slot::Secondary, &b.file);

    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Swapped(SwapKind::Test));
    assert_eq!(booted_digest(&d), b.digest);
    assert!(d.booted().unwrap().trial);
    assert_eq!(
        w.rig.counter(),
        1,
        "a trial image must not raise the counter"
    );
    assert!(w.rig.holds(Slot::Primary, &b) && w.rig.holds(Slot::Secondary, &w.a));

    // Reset without confirming: revert.
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Swapped(SwapKind::Revert));
    assert_eq!(booted_digest(&d), w.a.digest);
    assert!(!d.booted().unwrap().trial);
    assert!(w.rig.holds(Slot::Primary, &w.a) && w.rig.holds(Slot::Secondary, &b));
    // And it stays.
    let d = w.rig.boot().unwrap();
    assert_eq!((d.action, booted_digest(&d)), (Action::None, w.a.digest));
    assert_eq!(w.rig.counter(), 1);
    assert_eq!(w.rig.flash.violations(), 0);
}

#[test]
fn confirmed_test_image_stays_and_raises_the_counter_at_the_next_boot() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Test));
    w.rig.put_slot(Slot::Secondary, &b.file);
    w.rig.boot().unwrap();
    assert_eq!(w.rig.confirm().unwrap(), Confirmation::Confirmed);
    assert_eq!(w.rig.confirm().unwrap(), Confirmation::AlreadyConfirmed);
    let d = w.rig.boot().unwrap();
    assert_eq!((d.action, booted_digest(&d)), (Action::None, b.digest));
    assert!(!d.booted().unwrap().trial);
    assert_eq!((d.counter.before, d.counter.after), (1, 2));
    let d = w.rig.boot().unwrap();
    assert_eq!(booted_digest(&d), b.digest);
}

#[test]
fn permanent_upgrade_installs_confirms_and_fuses_in_one_boot() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Confirm));
    w.rig.put_slot(Slot::Secondary, &b.file);
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Swapped(SwapKind::Perm));
    assert_eq!(booted_digest(&d), b.digest);
    assert!(!d.booted().unwrap().trial);
    assert_eq!(w.rig.counter(), 2);
    assert_eq!(w.rig.confirm().unwrap(), Confirmation::AlreadyConfirmed);
    let d = w.rig.boot().unwrap();
    assert_eq!((d.action, booted_digest(&d)), (Action::None, b.digest));
    assert!(w.rig.holds(Slot::Secondary, &w.a), "the old image is kept");
}

#[test]
fn request_update_writes_the_trailer_an_application_would() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 5_000));
    w.rig.put_slot(Slot::Secondary, &b.file);
    assert_eq!(
        w.rig.boot().unwrap().action,
        Action::None,
        "no trailer, no request"
    );
    w.rig.device().request_update(false).unwrap();
    w.rig.device().request_update(false).unwrap();
    assert!(
        w.rig.device().request_update(true).is_err(),
        "a different request on top"
    );
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Swapped(SwapKind::Test));
    assert_eq!(booted_digest(&d), b.digest);
}

/// Boots with `candidate` in the secondary slot and checks it is refused for `reason`
/// without a single byte of flash changing, and that A still boots.
fn refused_untouched(w: &mut World, candidate: &[u8], expect: impl Fn(&RefusalReason) -> bool) {
    w.rig.put_slot(Slot::Secondary, candidate);
    let before = w.rig.flash.as_bytes().to_vec();
    let d = w.rig.boot().unwrap();
    assert!(matches!(d.action, Action::Refused(_)), "{:?}", d.action);
    let r: Vec<_> = d.refusals().copied().collect();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].subject, Subject::Slot(Slot::Secondary));
    assert!(expect(&r[0].reason), "unexpected reason: {}", r[0].reason);
    assert_eq!(booted_digest(&d), w.a.digest);
    assert!(
        w.rig.flash.as_bytes() == &before[..],
        "refusal changed the flash"
    );
    assert_eq!(w.rig.flash.stats().erases, 0);
}

#[test]
fn bad_signature_is_refused_before_anything_is_erased() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    w.rig.flash.reset_stats();
    let mut b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Test)).file;
    b[0x200 + 100] ^= 0x40; // a payload byte
    refused_untouched(&mut w, &b, |r| {
        matches!(r, RefusalReason::Invalid(VerifyError::HashMismatch))
    });
}

#[test]
fn image_signed_by_another_key_is_refused_before_anything_is_erased() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    w.rig.flash.reset_stats();
    let spec = Spec::new("2.0.0", 2, 20_000).pad(Pad::Confirm);
    let b = sign(
        &w.keys,
        &w.keys.other,
        &w.geo,
        w.rig.layout.secondary.size,
        &spec,
    );
    refused_untouched(&mut w, &b.file, |r| {
        matches!(r, RefusalReason::Invalid(VerifyError::UntrustedKey))
    });
}

#[test]
fn downgrade_is_refused_before_anything_is_erased() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    w.rig.flash.reset_stats();
    let old = w.app(&Spec::new("0.9.0", 0, 20_000).pad(Pad::Test));
    refused_untouched(&mut w, &old.file, |r| {
        *r == RefusalReason::Rollback { image: 0, floor: 1 }
    });
}

#[test]
fn image_too_large_for_swap_move_is_refused_although_imgtool_padded_it() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    w.rig.flash.reset_stats();
    let max = w.rig.layout.max_image_size();
    // imgtool accepts it for the slot (payload + trailer fit), but swap-move needs a spare
    // sector in the primary slot.
    let big = w.app(&Spec::new("2.0.0", 2, (max + 300) as usize).pad(Pad::Test));
    assert!(big.len > max);
    refused_untouched(&mut w, &big.file, |r| {
        matches!(r, RefusalReason::TooLarge { .. })
    });
}

#[test]
fn corrupted_secondary_magic_is_no_request_at_all() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let mut b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Confirm)).file;
    let n = b.len();
    b[n - 3] ^= 0x10;
    w.rig.put_slot(Slot::Secondary, &b);
    let before = w.rig.flash.as_bytes().to_vec();
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::None);
    assert_eq!(booted_digest(&d), w.a.digest);
    assert!(w.rig.flash.as_bytes() == &before[..]);
}

#[test]
fn tampered_application_with_nothing_else_halts() {
    let mut w = World::new();
    let mut a = w.a.file.clone();
    a[0x200 + 5] ^= 1;
    w.rig.put_slot(Slot::Primary, &a);
    let d = w.rig.boot().unwrap();
    assert_eq!(d.outcome, Outcome::NothingBootable);
    let r: Vec<_> = d.refusals().copied().collect();
    assert_eq!(r[0].subject, Subject::Slot(Slot::Primary));
    assert_eq!(
        r[0].reason,
        RefusalReason::Invalid(VerifyError::HashMismatch)
    );
    // Only the ROM's measurement: the application was never measured.
    assert_eq!(d.measurements.len(), 1);
    assert_eq!(w.rig.counter(), 0);
}

#[test]
fn tampered_bootloader_halts_in_the_rom() {
    let mut w = World::new();
    let mut bl = w.bl.file.clone();
    bl[0x200 + 7] ^= 0x80;
    w.rig.put_bootloader(&bl);
    let d = w.rig.boot().unwrap();
    assert_eq!(d.outcome, Outcome::NothingBootable);
    let r: Vec<_> = d.refusals().copied().collect();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].subject, Subject::Bootloader);
    assert!(d.measurements.is_empty());
}

#[test]
fn bootloader_signed_by_an_untrusted_key_halts_in_the_rom() {
    let mut w = World::new();
    let spec = Spec::new("0.2.0", 0, 3000);
    let bl = sign(&w.keys, &w.keys.other, &w.geo, 0, &spec);
    w.rig.put_bootloader(&bl.file);
    let d = w.rig.boot().unwrap();
    assert_eq!(d.outcome, Outcome::NothingBootable);
    assert_eq!(
        d.refusals().next().unwrap().reason,
        RefusalReason::Invalid(VerifyError::UntrustedKey)
    );
}

#[test]
fn revoked_root_key_verifies_nothing() {
    let mut w = World::new();
    let mut otp = ironroot_boot::Otp::new(&mut w.rig.otp).unwrap();
    otp.revoke_key(0).unwrap();
    let d = w.rig.boot().unwrap();
    assert_eq!(d.outcome, Outcome::NothingBootable);
}

#[test]
fn image_carrying_its_own_key_is_trusted_by_the_otp_hash_alone() {
    let mut w = World::new();
    w.rig.keys.clear(); // nothing provisioned: only OTP hashes remain
    let mut spec = Spec::new("0.1.0", 0, 3000);
    spec.full_pubkey = true;
    let bl = sign(&w.keys, &w.keys.ed, &w.geo, 0, &spec);
    let mut spec = Spec::new("1.0.0", 1, 9000);
    spec.full_pubkey = true;
    let a = sign(
        &w.keys,
        &w.keys.root,
        &w.geo,
        w.rig.layout.secondary.size,
        &spec,
    );
    w.rig.put_bootloader(&bl.file);
    w.rig.put_slot(Slot::Primary, &a.file);
    let d = w.rig.boot().unwrap();
    assert_eq!(booted_digest(&d), a.digest);
    // A full key the OTP does not know is refused.
    let mut spec = Spec::new("1.0.0", 1, 9000);
    spec.full_pubkey = true;
    let x = sign(
        &w.keys,
        &w.keys.other,
        &w.geo,
        w.rig.layout.secondary.size,
        &spec,
    );
    w.rig.put_slot(Slot::Primary, &x.file);
    assert_eq!(w.rig.boot().unwrap().outcome, Outcome::NothingBootable);
}

/// MCUboot #1708: downgrade prevention held for TEST swaps only; a PERM ("confirm") request
/// or a REVERT bypassed it.
#[test]
fn regression_mcuboot_1708_permanent_request_cannot_downgrade_a_confirmed_image() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Test));
    w.rig.put_slot(Slot::Secondary, &b.file);
    w.rig.boot().unwrap();
    w.rig.confirm().unwrap();
    assert_eq!(w.rig.counter(), 1, "not fused until the next boot");
    // Before that boot, an attacker puts the old image back with --confirm.
    let old = w.app(&Spec::new("1.0.0", 1, 10_000).pad(Pad::Confirm));
    w.rig.put_slot(Slot::Secondary, &old.file);
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Refused(SwapKind::Perm));
    assert_eq!(
        d.refusals().next().unwrap().reason,
        RefusalReason::Rollback { image: 1, floor: 2 }
    );
    assert_eq!(booted_digest(&d), b.digest);
    assert_eq!(w.rig.counter(), 2);
}

#[test]
fn regression_mcuboot_1708_forged_revert_cannot_downgrade() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Confirm));
    w.rig.put_slot(Slot::Secondary, &b.file);
    w.rig.boot().unwrap();
    assert_eq!(w.rig.counter(), 2);
    assert!(w.rig.holds(Slot::Secondary, &w.a));
    // Forge "test swap done, not confirmed" in the primary trailer to trigger a revert to A.
    let l = w.rig.layout;
    let tr = l.trailer_region(Slot::Primary);
    w.rig.flash.erase_raw(tr.offset, tr.size);
    let p = l.primary;
    w.rig
        .flash
        .program_raw(p.offset + l.trailer.magic_off(p.size), &l.trailer.magic());
    w.rig
        .flash
        .program_raw(p.offset + l.trailer.copy_done_off(p.size), &[1]);
    w.rig
        .flash
        .program_raw(p.offset + l.trailer.swap_info_off(p.size), &[2]);
    let before = w.rig.flash.as_bytes().to_vec();
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Refused(SwapKind::Revert));
    assert_eq!(
        d.refusals().next().unwrap().reason,
        RefusalReason::Rollback { image: 1, floor: 2 }
    );
    assert_eq!(booted_digest(&d), b.digest);
    assert!(w.rig.flash.as_bytes() == &before[..]);
}

#[test]
fn regression_mcuboot_1708_test_request_cannot_downgrade() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Confirm));
    w.rig.put_slot(Slot::Secondary, &b.file);
    w.rig.boot().unwrap();
    let old = w.app(&Spec::new("1.0.0", 1, 10_000).pad(Pad::Test));
    w.rig.put_slot(Slot::Secondary, &old.file);
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Refused(SwapKind::Test));
    assert_eq!(booted_digest(&d), b.digest);
}

#[test]
fn legitimate_revert_to_a_lower_counter_is_allowed_while_unconfirmed() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 5, 20_000).pad(Pad::Test));
    w.rig.put_slot(Slot::Secondary, &b.file);
    w.rig.boot().unwrap();
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Swapped(SwapKind::Revert));
    assert_eq!(booted_digest(&d), w.a.digest);
    assert_eq!(w.rig.counter(), 1);
}

#[test]
fn factory_image_padded_without_confirm_is_permanent() {
    let mut w = World::new();
    let a = w.app(&Spec::new("1.0.0", 1, 10_000).pad(Pad::Test));
    // A padded file is larger than the primary slot's image area but fits the slot.
    w.rig.put_slot(Slot::Primary, &a.file);
    let d = w.rig.boot().unwrap();
    assert_eq!((d.action, booted_digest(&d)), (Action::None, a.digest));
    assert_eq!(w.rig.counter(), 1);
}

#[test]
fn non_bootable_image_is_refused() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let mut spec = Spec::new("2.0.0", 2, 20_000).pad(Pad::Test);
    spec.non_bootable = true;
    let b = w.app(&spec);
    w.rig.put_slot(Slot::Secondary, &b.file);
    let d = w.rig.boot().unwrap();
    assert_eq!(
        d.refusals().next().unwrap().reason,
        RefusalReason::NotBootable
    );
}

#[test]
fn encrypted_update_is_decrypted_on_install_and_re_encrypted_on_revert() {
    let mut w = World::new();
    w.rig = w.rig.clone().with_decryption(&w.keys.enc_scalar);
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Test).encrypted());
    assert_ne!(
        b.file[..b.len as usize],
        b.plain[..],
        "payload is encrypted"
    );
    w.rig.put_slot(Slot::Secondary, &b.file);
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Swapped(SwapKind::Test));
    assert_eq!(booted_digest(&d), b.digest);
    assert!(
        w.rig.holds(Slot::Primary, &b),
        "plaintext in the primary slot"
    );
    let d = w.rig.boot().unwrap();
    assert_eq!(booted_digest(&d), w.a.digest);
    assert!(
        w.rig.holds_stored(Slot::Secondary, &b),
        "encrypted again in the secondary slot"
    );
}

#[test]
fn encrypted_running_image_is_re_encrypted_when_moved_aside() {
    let mut w = World::new();
    w.rig = w.rig.clone().with_decryption(&w.keys.enc_scalar);
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Confirm).encrypted());
    w.rig.put_slot(Slot::Secondary, &b.file);
    assert_eq!(booted_digest(&w.rig.boot().unwrap()), b.digest);
    let c = w.app(&Spec::new("3.0.0", 3, 15_000).pad(Pad::Test));
    w.rig.put_slot(Slot::Secondary, &c.file);
    assert_eq!(booted_digest(&w.rig.boot().unwrap()), c.digest);
    assert!(
        w.rig.holds_stored(Slot::Secondary, &b),
        "B went back to its encrypted form"
    );
    // Revert brings B back in plaintext.
    assert_eq!(booted_digest(&w.rig.boot().unwrap()), b.digest);
    assert!(w.rig.holds(Slot::Primary, &b));
}

#[test]
fn encrypted_update_without_a_device_key_or_for_another_device_is_refused() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 2, 20_000).pad(Pad::Test).encrypted());
    refused_untouched(&mut w, &b.file, |r| *r == RefusalReason::NoDecryptionKey);
    let mut w2 = World::new();
    // Device key of another device: the HMAC over the wrapped key fails.
    w2.rig = w2.rig.clone().with_decryption(&[7u8; 32]);
    w2.rig.boot().unwrap();
    let b2 = sign(
        &w.keys,
        &w.keys.root,
        &w2.geo,
        w2.rig.layout.secondary.size,
        &Spec::new("2.0.0", 2, 20_000).pad(Pad::Test).encrypted(),
    );
    refused_untouched(&mut w2, &b2.file, |r| {
        matches!(r, RefusalReason::Invalid(VerifyError::Unwrap(_)))
    });
}

/// MCUboot #2282: a test swap interrupted by a reset and then resumed left the swap type at
/// "none", so the security counter was raised as if the image were confirmed, and the revert
/// to the old image was then refused.
#[test]
fn regression_mcuboot_2282_resumed_test_swap_does_not_raise_the_counter() {
    let mut w = World::new();
    w.rig.boot().unwrap();
    let b = w.app(&Spec::new("2.0.0", 7, 20_000).pad(Pad::Test));
    w.rig.put_slot(Slot::Secondary, &b.file);
    let mut probe = w.rig.clone();
    let s = probe.power.ops();
    probe.boot().unwrap();
    let ops = probe.power.ops() - s;
    w.rig
        .power
        .arm(ops / 2, ironroot_boot::sim::CutMode::Before);
    assert!(w.rig.boot().is_err());
    w.rig.power.restore();
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Resumed(SwapKind::Test));
    assert_eq!(booted_digest(&d), b.digest);
    assert!(d.booted().unwrap().trial);
    assert_eq!(
        w.rig.counter(),
        1,
        "a resumed test swap must not fuse the new counter"
    );
    let d = w.rig.boot().unwrap();
    assert_eq!(d.action, Action::Swapped(SwapKind::Revert));
    assert_eq!(booted_digest(&d), w.a.digest);
}
