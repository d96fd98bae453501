//! Properties: the trailer state machine against MCUboot's tables written as data, random
//! operation sequences against a model of the update semantics, and random sequences with
//! power cuts and trailer tampering against the safety invariants.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use ironroot_boot::sim::{CutMode, Power, SimGeometry, SimMemory};
use ironroot_boot::trailer::{Flag, Magic, Request, SlotTrailer, request};
use ironroot_boot::{Action, Layout, Outcome, Region, Slot, SwapKind};

use crate::support::{Geo, Img, Keys, Pad, Rig, Spec, sign};

// ---------------------------------------------------------------- trailer state machine --

/// A trailer field as written in flash.
#[derive(Debug, Clone, Copy)]
enum Byte {
    Erased,
    Value(u8),
}

#[derive(Debug, Clone, Copy)]
struct RawTrailer {
    magic: u8, // 0 erased, 1 good, 2 one byte wrong
    swap_info: Byte,
    copy_done: Byte,
    image_ok: Byte,
    swap_size: Option<u32>,
}

fn byte() -> impl Strategy<Value = Byte> {
    prop_oneof![
        3 => Just(Byte::Erased),
        3 => Just(Byte::Value(1)),
        1 => any::<u8>().prop_map(Byte::Value),
    ]
}

fn raw_trailer() -> impl Strategy<Value = RawTrailer> {
    (
        0u8..3,
        prop_oneof![
            Just(Byte::Erased),
            (2u8..5).prop_map(Byte::Value),
            any::<u8>().prop_map(Byte::Value)
        ],
        byte(),
        byte(),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(
            |(magic, swap_info, copy_done, image_ok, swap_size)| RawTrailer {
                magic,
                swap_info,
                copy_done,
                image_ok,
                swap_size,
            },
        )
}

fn write_raw(f: &mut SimMemory, l: &Layout, r: Region, t: &RawTrailer) {
    let tt = &l.trailer;
    let mut magic = tt.magic();
    match t.magic {
        0 => magic = [l.erased; 16],
        1 => {}
        _ => magic[5] ^= 0x20,
    }
    f.program_raw(r.offset + tt.magic_off(r.size), &magic);
    let put = |f: &mut SimMemory, off: u32, b: Byte| {
        if let Byte::Value(v) = b {
            f.program_raw(r.offset + off, &[v]);
        }
    };
    put(f, tt.swap_info_off(r.size), t.swap_info);
    put(f, tt.copy_done_off(r.size), t.copy_done);
    put(f, tt.image_ok_off(r.size), t.image_ok);
    if let Some(s) = t.swap_size {
        f.program_raw(r.offset + tt.swap_size_off(r.size), &s.to_le_bytes());
    }
}

/// What a field decodes to, per MCUboot: erased = unset, 0x01 = set, else bad.
fn flag(b: Byte, erased: u8) -> Flag {
    match b {
        Byte::Erased => Flag::Unset,
        Byte::Value(v) if v == erased => Flag::Unset,
        Byte::Value(1) => Flag::Set,
        Byte::Value(_) => Flag::Bad,
    }
}

/// Matchers of MCUboot's tables.
#[derive(Clone, Copy)]
enum M {
    Any,
    Good,
    NotGood,
    Unset,
    /// Set, or bad (a started write; ironroot's deviation).
    Written,
    ValidSwapType,
}

struct Row {
    primary: [M; 4],   // magic, image_ok, copy_done, swap_info
    secondary: [M; 2], // magic, image_ok
    result: fn(&SlotTrailer) -> Request,
}

fn rows() -> Vec<Row> {
    use M::*;
    vec![
        // Interrupted swap: the primary trailer is authoritative once the secondary's is gone.
        Row {
            primary: [Good, Any, Unset, ValidSwapType],
            secondary: [NotGood, Any],
            result: |p| Request::Resume(p.swap_kind().unwrap()),
        },
        // State II: TEST.
        Row {
            primary: [Any; 4],
            secondary: [Good, Unset],
            result: |_| Request::Swap(SwapKind::Test),
        },
        // State III: PERM.
        Row {
            primary: [Any; 4],
            secondary: [Good, Written],
            result: |_| Request::Swap(SwapKind::Perm),
        },
        // State IV: REVERT.
        Row {
            primary: [Good, Unset, Written, Any],
            secondary: [Any, Any],
            result: |_| Request::Swap(SwapKind::Revert),
        },
        Row {
            primary: [Any; 4],
            secondary: [Any; 2],
            result: |_| Request::None,
        },
    ]
}

fn magic_matches(m: M, v: Magic) -> bool {
    match m {
        M::Any => true,
        M::Good => v == Magic::Good,
        M::NotGood => v != Magic::Good,
        _ => unreachable!(),
    }
}

fn flag_matches(m: M, v: Flag) -> bool {
    match m {
        M::Any => true,
        M::Unset => v == Flag::Unset,
        M::Written => v != Flag::Unset,
        _ => unreachable!(),
    }
}

fn table(p: &SlotTrailer, s: &SlotTrailer) -> Request {
    for row in rows() {
        let info_ok = match row.primary[3] {
            M::Any => true,
            M::ValidSwapType => p.swap_kind().is_some(),
            _ => unreachable!(),
        };
        if magic_matches(row.primary[0], p.magic)
            && flag_matches(row.primary[1], p.image_ok)
            && flag_matches(row.primary[2], p.copy_done)
            && info_ok
            && magic_matches(row.secondary[0], s.magic)
            && flag_matches(row.secondary[1], s.image_ok)
        {
            return (row.result)(p);
        }
    }
    unreachable!("the last row matches everything")
}

#[test]
fn trailer_state_machine_matches_mcuboot_tables() {
    let geos = [(4096u32, 8u32, 0xffu8), (1024, 1, 0x00), (2048, 32, 0xff)];
    let mut runner = TestRunner::new(Config::with_cases(512));
    runner
        .run(&(0usize..3, raw_trailer(), raw_trailer()), |(g, pt, st)| {
            let (sector, write, erased) = geos[g];
            let geo = Geo {
                sector,
                write,
                erased,
                boot_sectors: 1,
                primary_sectors: 16,
                secondary_sectors: 15,
                flash_erase: 0,
            };
            let l = geo.layout();
            let mut f = SimMemory::new(
                SimGeometry {
                    erase_size: sector,
                    write_size: write,
                    erased,
                    capacity: geo.capacity(),
                },
                Power::new(),
            );
            write_raw(&mut f, &l, l.primary, &pt);
            write_raw(&mut f, &l, l.secondary, &st);
            let p = SlotTrailer::read(&mut f, &l, Slot::Primary).unwrap();
            let s = SlotTrailer::read(&mut f, &l, Slot::Secondary).unwrap();
            // Decoding.
            for (raw, dec) in [(&pt, &p), (&st, &s)] {
                let want = match raw.magic {
                    0 => Magic::Unset,
                    1 => Magic::Good,
                    _ => Magic::Bad,
                };
                prop_assert_eq!(dec.magic, want);
                prop_assert_eq!(dec.image_ok, flag(raw.image_ok, erased));
                prop_assert_eq!(dec.copy_done, flag(raw.copy_done, erased));
                let info = match raw.swap_info {
                    Byte::Value(v) if v != erased => Some(v),
                    _ => None,
                };
                prop_assert_eq!(dec.swap_info, info);
            }
            // The decision.
            prop_assert_eq!(request(&p, &s), table(&p, &s));
            Ok(())
        })
        .unwrap();
}

// ------------------------------------------------------- random operations vs a model --

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PState {
    /// No trailer: a factory image, permanent.
    Permanent,
    /// Swapped in by a test swap, not confirmed.
    Trial,
    /// image_ok written (confirmed, permanent upgrade, or reverted).
    Confirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Req {
    None,
    Test,
    Perm,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Put(usize, Req),
    Boot,
    Confirm,
}

/// The update semantics, written independently of the implementation.
#[derive(Debug, Clone)]
struct Model {
    primary: usize,
    pstate: PState,
    secondary: Option<usize>,
    sreq: Req,
    counter: u32,
}

struct Catalog {
    imgs: Vec<Img>,
    valid: Vec<bool>,
}

impl Catalog {
    fn ok(&self, i: usize, counter: u32) -> bool {
        self.valid[i] && self.imgs[i].counter >= counter
    }
}

/// What the model expects a boot to do.
#[derive(Debug, PartialEq, Eq)]
struct Expect {
    action: Action,
    booted: Option<(usize, bool)>,
    counter: u32,
}

impl Model {
    fn boot(&mut self, c: &Catalog) -> Expect {
        let mut action = Action::None;
        match (self.sreq, self.pstate) {
            (Req::Test | Req::Perm, _) => {
                let kind = if self.sreq == Req::Test {
                    SwapKind::Test
                } else {
                    SwapKind::Perm
                };
                if self.pstate == PState::Confirmed && c.valid[self.primary] {
                    self.counter = self.counter.max(c.imgs[self.primary].counter);
                }
                let cand = self.secondary.expect("a request comes with an image");
                if c.ok(cand, self.counter) {
                    self.secondary = Some(self.primary);
                    self.primary = cand;
                    self.pstate = if kind == SwapKind::Test {
                        PState::Trial
                    } else {
                        PState::Confirmed
                    };
                    self.sreq = Req::None;
                    action = Action::Swapped(kind);
                } else {
                    action = Action::Refused(kind);
                }
            }
            (Req::None, PState::Trial) => match self.secondary {
                Some(cand) if c.ok(cand, self.counter) => {
                    self.secondary = Some(self.primary);
                    self.primary = cand;
                    self.pstate = PState::Confirmed;
                    action = Action::Swapped(SwapKind::Revert);
                }
                _ => action = Action::Refused(SwapKind::Revert),
            },
            (Req::None, _) => {}
        }
        let booted = if c.ok(self.primary, self.counter) {
            let explicit = self.pstate == PState::Confirmed;
            let implicit = self.pstate == PState::Permanent && self.sreq == Req::None;
            if explicit || implicit {
                self.counter = self.counter.max(c.imgs[self.primary].counter);
            }
            Some((self.primary, self.pstate == PState::Trial))
        } else {
            None
        };
        Expect {
            action,
            booted,
            counter: self.counter,
        }
    }
}

fn small_geo() -> Geo {
    Geo {
        sector: 4096,
        write: 8,
        erased: 0xff,
        boot_sectors: 1,
        primary_sectors: 6,
        secondary_sectors: 5,
        flash_erase: 0,
    }
}

/// Images: 0 A(c1), 1 B(c2), 2 C(c3), 3 D(c0, a downgrade), 4 B tampered, 5 signed by another key.
fn catalog(keys: &Keys, geo: &Geo, slot: u32) -> Catalog {
    let s = |v: &str, c: u32, len: usize| sign(keys, &keys.root, geo, slot, &Spec::new(v, c, len));
    let a = s("1.0.0", 1, 3000);
    let b = s("2.0.0", 2, 9000);
    let c = s("3.0.0", 3, 5000);
    let d = s("0.5.0", 0, 12000);
    let mut e = b.clone();
    e.file[super::support::HEADER as usize + 10] ^= 4;
    e.digest = [0xee; 32];
    let f = sign(keys, &keys.other, geo, slot, &Spec::new("9.0.0", 9, 4000));
    Catalog {
        imgs: vec![a, b, c, d, e, f],
        valid: vec![true, true, true, true, false, false],
    }
}

fn put(rig: &mut Rig, img: &Img, req: Req) {
    rig.put_slot(Slot::Secondary, &img.file);
    match req {
        Req::None => {}
        Req::Test => rig.device().request_update(false).unwrap(),
        Req::Perm => rig.device().request_update(true).unwrap(),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0usize..6, prop_oneof![Just(Req::None), Just(Req::Test), Just(Req::Perm)])
            .prop_map(|(i, r)| Op::Put(i, r)),
        4 => Just(Op::Boot),
        2 => Just(Op::Confirm),
    ]
}

#[test]
fn random_operation_sequences_follow_the_model() {
    let keys = Keys::new();
    let geo = small_geo();
    let mut base = Rig::new(geo, keys.provisioned(), &[&keys.root.trusted]);
    let cat = catalog(&keys, &geo, base.layout.secondary.size);
    let bl = sign(&keys, &keys.root, &geo, 0, &Spec::new("0.1.0", 0, 1000));
    base.put_bootloader(&bl.file);
    base.put_slot(Slot::Primary, &cat.imgs[0].file);
    let mut runner = TestRunner::new(Config::with_cases(96));
    runner
        .run(&proptest::collection::vec(op(), 1..24), |ops| {
            let mut rig = base.clone();
            let mut model = Model {
                primary: 0,
                pstate: PState::Permanent,
                secondary: None,
                sreq: Req::None,
                counter: 0,
            };
            for (n, op) in ops.iter().enumerate() {
                match *op {
                    Op::Put(i, req) => {
                        put(&mut rig, &cat.imgs[i], req);
                        model.secondary = Some(i);
                        model.sreq = req;
                    }
                    Op::Confirm => {
                        rig.confirm().unwrap();
                        if model.pstate == PState::Trial {
                            model.pstate = PState::Confirmed;
                        }
                    }
                    Op::Boot => {
                        let d = rig.boot().unwrap();
                        let want = model.boot(&cat);
                        let got = Expect {
                            action: d.action,
                            booted: d.booted().map(|b| {
                                let i = cat.imgs.iter().position(|m| m.digest == b.digest).unwrap();
                                (i, b.trial)
                            }),
                            counter: rig.counter(),
                        };
                        prop_assert_eq!(&got, &want, "op {} of {:?}", n, ops);
                        if let Some((i, _)) = got.booted {
                            prop_assert!(rig.holds(Slot::Primary, &cat.imgs[i]));
                        }
                    }
                }
                prop_assert_eq!(rig.flash.violations(), 0);
            }
            Ok(())
        })
        .unwrap();
}

// ------------------------------------------ random operations with cuts and tampering --

#[derive(Debug, Clone, Copy)]
enum Chaos {
    Put(usize, Req),
    Boot,
    Confirm,
    /// Boot with power cut at operation n (torn when `torn`).
    CutBoot(u64, bool),
    /// Overwrite one byte of a trailer sector (an attacker with flash access).
    Tamper(bool, u32, u8),
}

fn chaos() -> impl Strategy<Value = Chaos> {
    prop_oneof![
        2 => (0usize..6, prop_oneof![Just(Req::None), Just(Req::Test), Just(Req::Perm)])
            .prop_map(|(i, r)| Chaos::Put(i, r)),
        3 => Just(Chaos::Boot),
        1 => Just(Chaos::Confirm),
        3 => (1u64..120, any::<bool>()).prop_map(|(n, t)| Chaos::CutBoot(n, t)),
        1 => (any::<bool>(), 0u32..4096, any::<u8>()).prop_map(|(p, o, b)| Chaos::Tamper(p, o, b)),
    ]
}

#[test]
fn random_sequences_with_power_cuts_and_tampering_never_boot_a_bad_image() {
    let keys = Keys::new();
    let geo = small_geo();
    let mut base = Rig::new(geo, keys.provisioned(), &[&keys.root.trusted]);
    let cat = catalog(&keys, &geo, base.layout.secondary.size);
    let bl = sign(&keys, &keys.root, &geo, 0, &Spec::new("0.1.0", 0, 1000));
    base.put_bootloader(&bl.file);
    base.put_slot(Slot::Primary, &cat.imgs[0].file);
    let mut runner = TestRunner::new(Config::with_cases(96));
    runner
        .run(&proptest::collection::vec(chaos(), 1..30), |ops| {
            let mut rig = base.clone();
            let mut counter = 0;
            for op in &ops {
                let decision = match *op {
                    Chaos::Put(i, req) => {
                        rig.put_slot(Slot::Secondary, &cat.imgs[i].file);
                        let _ = match req {
                            Req::None => Ok(()),
                            Req::Test => rig.device().request_update(false),
                            Req::Perm => rig.device().request_update(true),
                        };
                        None
                    }
                    Chaos::Confirm => {
                        rig.confirm().unwrap();
                        None
                    }
                    Chaos::Boot => Some(rig.boot().unwrap()),
                    Chaos::CutBoot(n, torn) => {
                        let mode = if torn {
                            CutMode::Torn { seed: n }
                        } else {
                            CutMode::Before
                        };
                        rig.power.arm(n, mode);
                        let r = rig.boot();
                        rig.power.restore();
                        r.ok()
                    }
                    Chaos::Tamper(primary, off, b) => {
                        let slot = if primary {
                            Slot::Primary
                        } else {
                            Slot::Secondary
                        };
                        let t = rig.layout.trailer_region(slot);
                        rig.flash.program_raw(t.offset + off % t.size, &[b]);
                        None
                    }
                };
                let now = rig.counter();
                prop_assert!(now >= counter, "OTP counter went down");
                counter = now;
                if let Some(d) = decision
                    && let Outcome::Boot(b) = d.outcome
                {
                    let i = cat.imgs.iter().position(|m| m.digest == b.digest);
                    prop_assert!(matches!(i, Some(0..=3)), "booted an invalid image");
                    let i = i.unwrap();
                    prop_assert!(b.security_counter >= rig.counter());
                    prop_assert!(rig.holds(Slot::Primary, &cat.imgs[i]));
                }
                prop_assert_eq!(
                    rig.flash.violations(),
                    0,
                    "NOR rule violated after {:?}",
                    op
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn pad_variants_are_requests() {
    // A sanity anchor for the model: --pad and --pad --confirm images are TEST and PERM.
    let keys = Keys::new();
    let geo = small_geo();
    let mut rig = Rig::new(geo, keys.provisioned(), &[&keys.root.trusted]);
    let bl = sign(&keys, &keys.root, &geo, 0, &Spec::new("0.1.0", 0, 1000));
    rig.put_bootloader(&bl.file);
    let slot = rig.layout.secondary.size;
    let a = sign(&keys, &keys.root, &geo, slot, &Spec::new("1.0.0", 1, 3000));
    rig.put_slot(Slot::Primary, &a.file);
    for (pad, kind) in [(Pad::Test, SwapKind::Test), (Pad::Confirm, SwapKind::Perm)] {
        let mut r = rig.clone();
        let b = sign(
            &keys,
            &keys.root,
            &geo,
            slot,
            &Spec::new("2.0.0", 2, 3000).pad(pad),
        );
        r.put_slot(Slot::Secondary, &b.file);
        assert_eq!(r.boot().unwrap().action, Action::Swapped(kind));
    }
}
