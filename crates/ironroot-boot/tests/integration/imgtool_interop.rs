//! imgtool as the oracle for the trailer: images imgtool padded with `--pad` / `--confirm`
//! trigger TEST / PERM swaps, the trailer our bootloader leaves behind reads back in
//! `imgtool dumpinfo` with MCUboot's values, and `request_update` writes exactly the bytes
//! imgtool's padding would have.

use std::process::Command;

use ironroot_boot::{Action, Slot, SwapKind};
use ironroot_testkit::{run_ok, tool};

use crate::support::{Geo, Img, Keys, Pad, Rig, Spec, booted_digest, sign, sign_imgtool};

/// The trailer fields `imgtool dumpinfo` reads from a slot image.
#[derive(Debug, PartialEq, Eq)]
struct Dumped {
    magic_ok: bool,
    image_ok: u64,
    copy_done: u64,
    swap_info: u64,
    swap_size: u64,
}

fn dumpinfo(keys: &Keys, slot: &[u8], magic: [u8; 16]) -> Dumped {
    let dir = keys.dir.path();
    let img = dir.join("slot-dump.bin");
    let json = dir.join("slot-dump.json");
    std::fs::write(&img, slot).unwrap();
    let _ = std::fs::remove_file(&json);
    run_ok(
        Command::new(tool("imgtool"))
            .args(["dumpinfo", "-s", "-f", "json", "-o"])
            .arg(&json)
            .arg(&img),
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let text = &text[text.find("\"trailer\"").expect("dumpinfo found a trailer")..];
    let field = |name: &str| -> String {
        let at = text
            .find(&format!("\"{name}\""))
            .unwrap_or_else(|| panic!("dumpinfo output has no {name}: {text}"));
        let rest = &text[at + name.len() + 2..];
        let rest = rest.trim_start_matches([':', ' ']);
        let end = rest.find([',', '}']).unwrap();
        rest[..end].trim().trim_matches('"').to_string()
    };
    let hex: String = magic.iter().map(|b| format!("{b:02x}")).collect();
    Dumped {
        magic_ok: field("magic") == hex,
        image_ok: field("image_ok").parse().unwrap(),
        copy_done: field("copy_done").parse().unwrap(),
        swap_info: field("swap_info").parse().unwrap(),
        swap_size: field("swap_size").parse().unwrap(),
    }
}

struct Setup {
    keys: Keys,
    geo: Geo,
    rig: Rig,
    a: Img,
}

fn setup(geo: Geo) -> Setup {
    let keys = Keys::new();
    let mut rig = Rig::new(geo, keys.provisioned(), &[&keys.root.trusted]);
    let bl = sign(&keys, &keys.root, &geo, 0, &Spec::new("0.1.0", 0, 1500));
    rig.put_bootloader(&bl.file);
    let a = sign(
        &keys,
        &keys.root,
        &geo,
        rig.layout.secondary.size,
        &Spec::new("1.0.0", 1, 6000),
    );
    rig.put_slot(Slot::Primary, &a.file);
    assert_eq!(booted_digest(&rig.boot().unwrap()), a.digest);
    Setup { keys, geo, rig, a }
}

fn geometries() -> [Geo; 3] {
    [
        Geo {
            sector: 4096,
            write: 8,
            erased: 0xff,
            boot_sectors: 1,
            primary_sectors: 9,
            secondary_sectors: 8,
            flash_erase: 0,
        },
        // max_align 32: the other magic (align in the first two bytes).
        Geo {
            sector: 4096,
            write: 32,
            erased: 0xff,
            boot_sectors: 1,
            primary_sectors: 10,
            secondary_sectors: 9,
            flash_erase: 0,
        },
        Geo {
            sector: 2048,
            write: 4,
            erased: 0x00,
            boot_sectors: 2,
            primary_sectors: 12,
            secondary_sectors: 11,
            flash_erase: 0,
        },
    ]
}

#[test]
fn imgtool_pad_requests_a_test_swap_and_dumpinfo_reads_our_trailers() {
    for geo in geometries() {
        let mut s = setup(geo);
        let e = u64::from(geo.erased);
        let b = sign_imgtool(
            &s.keys,
            &s.keys.root,
            &s.geo,
            s.rig.layout.secondary.size,
            &Spec::new("2.0.0", 2, 9000).pad(Pad::Test),
        );
        s.rig.put_slot(Slot::Secondary, &b.file);
        let magic = s.rig.layout.trailer.magic();
        // imgtool itself reads the request it wrote: magic, image_ok erased.
        let req = dumpinfo(&s.keys, s.rig.slot_bytes(Slot::Secondary), magic);
        assert!(req.magic_ok && req.image_ok == e, "{geo:?}: {req:?}");

        let d = s.rig.boot().unwrap();
        assert_eq!(d.action, Action::Swapped(SwapKind::Test), "{geo:?}");
        let swap_size = u64::from(s.a.len.max(b.len));
        assert_eq!(
            dumpinfo(&s.keys, s.rig.slot_bytes(Slot::Primary), magic),
            Dumped {
                magic_ok: true,
                image_ok: e,
                copy_done: 1,
                swap_info: 2,
                swap_size,
            },
            "{geo:?}: primary trailer after a test swap"
        );
        let d = s.rig.boot().unwrap();
        assert_eq!(d.action, Action::Swapped(SwapKind::Revert));
        assert_eq!(
            dumpinfo(&s.keys, s.rig.slot_bytes(Slot::Primary), magic),
            Dumped {
                magic_ok: true,
                image_ok: 1,
                copy_done: 1,
                swap_info: 4,
                swap_size,
            },
            "{geo:?}: primary trailer after a revert"
        );
    }
}

#[test]
fn imgtool_pad_confirm_requests_a_permanent_swap() {
    for geo in geometries() {
        let mut s = setup(geo);
        let b = sign_imgtool(
            &s.keys,
            &s.keys.root,
            &s.geo,
            s.rig.layout.secondary.size,
            &Spec::new("2.0.0", 2, 9000).pad(Pad::Confirm),
        );
        s.rig.put_slot(Slot::Secondary, &b.file);
        let magic = s.rig.layout.trailer.magic();
        let req = dumpinfo(&s.keys, s.rig.slot_bytes(Slot::Secondary), magic);
        assert!(req.magic_ok && req.image_ok == 1);
        let d = s.rig.boot().unwrap();
        assert_eq!(d.action, Action::Swapped(SwapKind::Perm), "{geo:?}");
        assert_eq!(booted_digest(&d), b.digest);
        let t = dumpinfo(&s.keys, s.rig.slot_bytes(Slot::Primary), magic);
        assert_eq!(
            (t.magic_ok, t.image_ok, t.copy_done, t.swap_info),
            (true, 1, 1, 3),
            "{geo:?}"
        );
        // The secondary slot now holds the old image, and no request.
        let d = s.rig.boot().unwrap();
        assert_eq!(d.action, Action::None);
    }
}

#[test]
fn request_update_writes_the_same_slot_bytes_as_imgtool_padding() {
    for geo in geometries() {
        for permanent in [false, true] {
            let mut s = setup(geo);
            let size = s.rig.layout.secondary.size;
            let spec = Spec::new("2.0.0", 2, 7000);
            let plain = sign_imgtool(&s.keys, &s.keys.root, &s.geo, size, &spec);
            s.rig.put_slot(Slot::Secondary, &plain.file);
            s.rig.device().request_update(permanent).unwrap();
            // ECDSA signatures are randomised, so the padded image is a second signature of
            // the same payload: compare everything after both images (padding and trailer).
            let pad = if permanent { Pad::Confirm } else { Pad::Test };
            let padded = sign_imgtool(&s.keys, &s.keys.root, &s.geo, size, &spec.clone().pad(pad));
            assert_eq!(padded.file.len(), size as usize);
            let ours = s.rig.slot_bytes(Slot::Secondary);
            let from = plain.len.max(padded.len) as usize;
            assert!(
                ours[from..] == padded.file[from..],
                "{geo:?} permanent={permanent}: slot tail differs from imgtool --pad"
            );
        }
    }
}

#[test]
fn imgtool_encrypted_image_is_decrypted_on_install_and_kept_encrypted_aside() {
    let geo = geometries()[0];
    let mut s = setup(geo);
    s.rig = s.rig.clone().with_decryption(&s.keys.enc_scalar);
    let spec = Spec::new("2.0.0", 2, 9000).pad(Pad::Test).encrypted();
    let b = sign_imgtool(
        &s.keys,
        &s.keys.root,
        &s.geo,
        s.rig.layout.secondary.size,
        &spec,
    );
    s.rig.put_slot(Slot::Secondary, &b.file);
    let d = s.rig.boot().unwrap();
    assert_eq!(d.action, Action::Swapped(SwapKind::Test));
    assert_eq!(booted_digest(&d), b.digest);
    assert!(
        s.rig.holds(Slot::Primary, &b),
        "imgtool's ciphertext decrypted in place"
    );
    let d = s.rig.boot().unwrap();
    assert_eq!(booted_digest(&d), s.a.digest);
    assert!(
        s.rig.holds_stored(Slot::Secondary, &b),
        "and encrypted again on revert"
    );
}
