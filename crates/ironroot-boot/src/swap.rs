//! The swap-move algorithm: exchange the images of the primary and secondary slots without a
//! scratch area, one sector at a time, resumable after power loss at any operation.
//!
//! With `L` = number of sectors the larger of the two images occupies, `p[i]` / `s[i]` the
//! sectors of the primary / secondary slot, `A` the image that starts in the primary slot and
//! `B` the one that starts in the secondary slot, the swap runs `3 L` numbered steps:
//!
//! ```text
//! step k          action                                   after it
//! 0 .. L          move up:  j = L-1-k: erase p[j+1], copy p[j] -> p[j+1]     A[j] at p[j+1]
//! L + 2j          install:  erase p[j],   copy s[j]   -> p[j]   (decrypt B)  B[j] at p[j]
//! L + 2j + 1      evict:    erase s[j],   copy p[j+1] -> s[j]   (encrypt A)  A[j] at s[j]
//! ```
//!
//! After step `k` completes, entry `k` of the swap-status area in the primary trailer is
//! written. On power-up the number of written entries says where to resume; the interrupted
//! step is simply done again, which is safe because no step changes its own source.
//! The primary slot needs one spare sector (`p[L]`) above the image; neither slot's trailer
//! sectors are ever touched by a step.

use crate::flash::{BootFlash, FlashError, all_erased};
use crate::layout::{Layout, Slot};
use crate::trailer::{self, SwapKind};

/// Bytes copied per flash write while moving a sector (a bootloader's RAM buffer).
pub const COPY_CHUNK: usize = 1024;

/// The extent of one swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapPlan {
    /// Sectors swapped (`L`).
    pub sectors: u32,
    /// Sector size.
    pub sector_size: u32,
}

impl SwapPlan {
    /// The plan for swapping images of at most `swap_size` bytes, or `None` when that does not
    /// fit this layout (too large, or zero).
    pub fn new(layout: &Layout, swap_size: u32) -> Option<Self> {
        if swap_size == 0 || swap_size > layout.max_image_size() {
            return None;
        }
        Some(Self {
            sectors: swap_size.div_ceil(layout.sector_size),
            sector_size: layout.sector_size,
        })
    }

    /// Number of steps (`3 L`).
    pub const fn steps(&self) -> u32 {
        3 * self.sectors
    }
}

/// One swap step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Move `A[j]` from `p[j]` to `p[j+1]`.
    MoveUp(u32),
    /// Copy `B[j]` from `s[j]` to `p[j]`.
    Install(u32),
    /// Copy `A[j]` from `p[j+1]` to `s[j]`.
    Evict(u32),
}

impl SwapPlan {
    /// Step number `k` (< [`steps`](Self::steps)).
    pub const fn step(&self, k: u32) -> Step {
        let l = self.sectors;
        if k < l {
            Step::MoveUp(l - 1 - k)
        } else {
            let m = k - l;
            if m.is_multiple_of(2) {
                Step::Install(m / 2)
            } else {
                Step::Evict(m / 2)
            }
        }
    }
}

/// Which of the two images taking part in a swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The image that was in the primary slot when the swap started (`A`).
    Primary,
    /// The image that was in the secondary slot when the swap started (`B`).
    Secondary,
}

/// Where sector `j` of image `origin` is intact after `done` completed steps (absolute
/// flash offset). During the step in progress this is its source, which that step never
/// changes.
pub fn locate(layout: &Layout, plan: &SwapPlan, origin: Origin, j: u32, done: u32) -> u32 {
    let s = plan.sector_size;
    let l = plan.sectors;
    let p = |i: u32| layout.primary.offset + i * s;
    let q = |i: u32| layout.secondary.offset + i * s;
    match origin {
        Origin::Primary => {
            if done > l + 2 * j + 1 {
                q(j)
            } else if done > l - 1 - j {
                p(j + 1)
            } else {
                p(j)
            }
        }
        Origin::Secondary => {
            if done > l + 2 * j {
                p(j)
            } else {
                q(j)
            }
        }
    }
}

/// Encrypts or decrypts an image payload while it is copied between slots.
pub trait PayloadCipher {
    /// The payload as `(start, len)` in image offsets (MCUboot: header size, image size).
    fn payload(&self) -> (u32, u32);
    /// XORs the key stream for payload bytes starting at `payload_offset` into `buf`.
    fn apply(&mut self, payload_offset: u32, buf: &mut [u8]);
}

/// Applies `cipher` to the part of `buf` (image offsets `at..at + len`) inside the payload.
fn transform(cipher: &mut dyn PayloadCipher, at: u32, buf: &mut [u8]) {
    let (start, len) = cipher.payload();
    let end = start.saturating_add(len);
    let lo = at.max(start);
    let hi = (at + buf.len() as u32).min(end);
    if lo < hi {
        let a = (lo - at) as usize;
        let b = (hi - at) as usize;
        cipher.apply(lo - start, &mut buf[a..b]);
    }
}

/// Ciphers for the two copy directions of a swap of encrypted images.
#[derive(Default)]
pub struct SwapCiphers<'a> {
    /// Decrypts `B` as it is installed into the primary slot (B is stored encrypted).
    pub install: Option<&'a mut dyn PayloadCipher>,
    /// Encrypts `A` as it is evicted into the secondary slot (A's header says encrypted).
    pub evict: Option<&'a mut dyn PayloadCipher>,
}

fn reborrow<'s>(c: &'s mut Option<&mut dyn PayloadCipher>) -> Option<&'s mut dyn PayloadCipher> {
    match c {
        Some(c) => Some(&mut **c),
        None => None,
    }
}

/// Erases `dst` and copies one sector into it from `src`, applying `cipher` to payload bytes of
/// the image sector starting at image offset `at`. Chunks that end up erased are not written.
fn copy_sector(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    src: u32,
    dst: u32,
    at: u32,
    mut cipher: Option<&mut dyn PayloadCipher>,
) -> Result<(), FlashError> {
    let s = layout.sector_size;
    flash.erase(dst, dst + s)?;
    let mut buf = [0u8; COPY_CHUNK];
    let n = (s as usize).min(COPY_CHUNK);
    let mut off = 0u32;
    while off < s {
        let chunk = &mut buf[..n];
        flash.read(src + off, chunk)?;
        if let Some(c) = cipher.as_deref_mut() {
            transform(c, at + off, chunk);
        }
        if !all_erased(chunk, layout.erased) {
            flash.write(dst + off, chunk)?;
        }
        off += n as u32;
    }
    Ok(())
}

/// Runs swap steps `from..plan.steps()`, recording each in the status area.
pub fn run_steps(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    plan: &SwapPlan,
    from: u32,
    ciphers: &mut SwapCiphers<'_>,
) -> Result<(), FlashError> {
    let s = plan.sector_size;
    let p = |i: u32| layout.primary.offset + i * s;
    let q = |i: u32| layout.secondary.offset + i * s;
    for k in from..plan.steps() {
        match plan.step(k) {
            Step::MoveUp(j) => copy_sector(flash, layout, p(j), p(j + 1), j * s, None)?,
            Step::Install(j) => copy_sector(
                flash,
                layout,
                q(j),
                p(j),
                j * s,
                reborrow(&mut ciphers.install),
            )?,
            Step::Evict(j) => copy_sector(
                flash,
                layout,
                p(j + 1),
                q(j),
                j * s,
                reborrow(&mut ciphers.evict),
            )?,
        }
        trailer::write_progress(flash, layout, k)?;
    }
    Ok(())
}

/// Starts a swap: records it in the primary trailer. Nothing of either image changes yet.
///
/// ```text
/// revert only: erase secondary trailer, secondary.image_ok = 1, secondary.magic
///              (a revert cut short from here on restarts as a permanent swap back)
/// erase primary trailer; primary.swap_size, primary.swap_info = kind,
/// perm only: primary.image_ok = 1; primary.magic          <- the swap exists from here
/// ```
///
/// The secondary trailer is erased by [`finish`] before the first step, which is what makes
/// the primary trailer authoritative (see [`trailer::interrupted_swap`]).
pub fn start(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    kind: SwapKind,
    swap_size: u32,
) -> Result<(), FlashError> {
    if kind == SwapKind::Revert {
        trailer::erase_trailer(flash, layout, Slot::Secondary)?;
        trailer::write_image_ok(flash, layout, Slot::Secondary)?;
        trailer::write_magic(flash, layout, Slot::Secondary)?;
    }
    trailer::erase_trailer(flash, layout, Slot::Primary)?;
    trailer::write_swap_size(flash, layout, Slot::Primary, swap_size)?;
    trailer::write_swap_info(flash, layout, Slot::Primary, kind)?;
    if kind == SwapKind::Perm {
        trailer::write_image_ok(flash, layout, Slot::Primary)?;
    }
    trailer::write_magic(flash, layout, Slot::Primary)
}

/// Runs (or resumes) the swap recorded in the primary trailer to completion and marks it done.
///
/// `done` is the progress read from the status area. The end of a swap is recorded like
/// MCUboot: a revert sets image_ok, then every swap sets copy_done.
pub fn finish(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    plan: &SwapPlan,
    kind: SwapKind,
    done: u32,
    ciphers: &mut SwapCiphers<'_>,
) -> Result<(), FlashError> {
    if done == 0 {
        trailer::erase_trailer(flash, layout, Slot::Secondary)?;
    }
    run_steps(flash, layout, plan, done, ciphers)?;
    let t = trailer::SlotTrailer::read(flash, layout, Slot::Primary)?;
    if kind == SwapKind::Revert && !t.image_ok.is_written() {
        trailer::write_image_ok(flash, layout, Slot::Primary)?;
    }
    if !t.copy_done.is_written() {
        trailer::write_copy_done(flash, layout, Slot::Primary)?;
    }
    Ok(())
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use std::prelude::rust_2024::*;

    use super::*;
    use crate::flash::Region;
    use crate::sim::{CutMode, Power, SimGeometry, SimMemory};
    use crate::trailer::{Request, SlotTrailer, read_progress, request};

    fn layout(sector: u32, write: u32, erased: u8, p: u32, s: u32) -> Layout {
        Layout::new(
            Region::new(0, sector),
            Region::new(sector, p * sector),
            Region::new(sector + p * sector, s * sector),
            sector,
            write,
            erased,
            16,
            false,
        )
        .unwrap()
    }

    fn flash_for(l: &Layout, power: Power) -> SimMemory {
        SimMemory::new(
            SimGeometry {
                erase_size: l.sector_size,
                write_size: l.trailer.write_size,
                erased: l.erased,
                capacity: l.secondary.end(),
            },
            power,
        )
    }

    fn pattern(len: u32, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect()
    }

    /// Boots "just the swap part": resume or start a TEST swap, the way the loader drives it.
    /// A revert request is the next boot's business (a completed test swap asks for one).
    fn drive(f: &mut SimMemory, l: &Layout, size: u32) -> Result<(), FlashError> {
        let pt = SlotTrailer::read(f, l, Slot::Primary)?;
        let st = SlotTrailer::read(f, l, Slot::Secondary)?;
        let plan = SwapPlan::new(l, size).unwrap();
        match request(&pt, &st) {
            Request::Resume(kind) => {
                let done = read_progress(f, l)?.done;
                finish(f, l, &plan, kind, done, &mut SwapCiphers::default())
            }
            Request::Swap(SwapKind::Revert) | Request::None => Ok(()),
            Request::Swap(kind) => {
                start(f, l, kind, size)?;
                finish(f, l, &plan, kind, 0, &mut SwapCiphers::default())
            }
        }
    }

    #[test]
    fn plan_steps_cover_every_sector_once_per_phase() {
        let plan = SwapPlan {
            sectors: 3,
            sector_size: 4,
        };
        let steps: Vec<Step> = (0..plan.steps()).map(|k| plan.step(k)).collect();
        assert_eq!(
            steps,
            [
                Step::MoveUp(2),
                Step::MoveUp(1),
                Step::MoveUp(0),
                Step::Install(0),
                Step::Evict(0),
                Step::Install(1),
                Step::Evict(1),
                Step::Install(2),
                Step::Evict(2),
            ]
        );
    }

    #[test]
    fn swap_exchanges_images_and_survives_a_cut_at_every_operation() {
        for (sector, write, erased, p, s) in [
            (256, 8, 0xff, 8, 7),
            (512, 1, 0x00, 6, 6),
            (256, 32, 0xff, 16, 12),
        ] {
            let l = layout(sector, write, erased, p, s);
            let max = l.max_image_size();
            for (a_len, b_len) in [(max, max / 2 + 3), (sector + 1, max), (7, 9)] {
                let a = pattern(a_len, 1);
                let b = pattern(b_len, 2);
                let size = a_len.max(b_len);
                let setup = |power: Power| {
                    let mut f = flash_for(&l, power);
                    f.program_raw(l.primary.offset, &a);
                    f.program_raw(l.secondary.offset, &b);
                    // A TEST request in the secondary trailer (as imgtool --pad writes it).
                    let st = l.secondary.offset + l.trailer.magic_off(l.secondary.size);
                    f.program_raw(st, &l.trailer.magic());
                    f
                };
                let power = Power::new();
                let mut clean = setup(power.clone());
                let before = power.ops();
                drive(&mut clean, &l, size).unwrap();
                let total = power.ops() - before;
                assert!(total > 0);
                let check = |f: &SimMemory| {
                    let mem = f.as_bytes();
                    let p0 = l.primary.offset as usize;
                    let s0 = l.secondary.offset as usize;
                    assert_eq!(&mem[p0..p0 + b.len()], &b[..], "B in primary");
                    assert_eq!(&mem[s0..s0 + a.len()], &a[..], "A in secondary");
                    assert_eq!(f.violations(), 0);
                };
                check(&clean);
                for cut in 1..=total {
                    for mode in [CutMode::Before, CutMode::Torn { seed: cut }] {
                        let power = Power::new();
                        let mut f = setup(power.clone());
                        power.arm(cut, mode);
                        assert!(drive(&mut f, &l, size).is_err(), "cut {cut} did not fire");
                        power.restore();
                        drive(&mut f, &l, size).unwrap();
                        check(&f);
                    }
                }
            }
        }
    }

    #[test]
    fn locate_follows_the_sectors() {
        let l = layout(256, 8, 0xff, 8, 7);
        let plan = SwapPlan::new(&l, 3 * 256).unwrap();
        let p = |i: u32| l.primary.offset + i * 256;
        let q = |i: u32| l.secondary.offset + i * 256;
        assert_eq!(locate(&l, &plan, Origin::Primary, 2, 0), p(2));
        assert_eq!(locate(&l, &plan, Origin::Primary, 2, 1), p(3));
        assert_eq!(locate(&l, &plan, Origin::Primary, 0, 3), p(1));
        assert_eq!(locate(&l, &plan, Origin::Primary, 0, 5), q(0));
        assert_eq!(locate(&l, &plan, Origin::Secondary, 0, 3), q(0));
        assert_eq!(locate(&l, &plan, Origin::Secondary, 0, 4), p(0));
        assert_eq!(locate(&l, &plan, Origin::Secondary, 2, 9), p(2));
    }
}
