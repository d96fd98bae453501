//! Reading and writing the MCUboot image trailer, and the tables that turn two trailers into a
//! swap decision.
//!
//! The decision tables are MCUboot's (`docs/design.md`, "Image trailers"), evaluated in order:
//!
//! ```text
//!  request  | primary slot                          | secondary slot
//!  ---------+---------------------------------------+-------------------------------
//!  TEST     | any                                   | magic good, image_ok unset
//!  PERM     | any                                   | magic good, image_ok written
//!  REVERT   | magic good, image_ok unset, copy_done written | any
//!  NONE     | anything else
//! ```
//!
//! A swap is *in progress* (resume it, don't start a new one) when the primary trailer has a
//! good magic, copy_done unset and a valid swap type, and the secondary magic is not good
//! (the secondary trailer is erased right after the primary one is initialised, so a good
//! secondary magic means the swap never really began and is started afresh).
//!
//! One deliberate deviation: a flag byte that is neither erased nor 0x01 ("bad" in MCUboot,
//! which then ignores the flag) counts as *written* here. Every flag write stores 0x01, so a
//! non-erased byte means a write was started; a write torn by power loss must not undo it.

use core::fmt;

use crate::flash::{BootFlash, FlashError, Region, all_erased};
use crate::layout::{Layout, Slot, TrailerLayout};

/// State of the trailer magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Magic {
    /// The 16 magic bytes for this alignment.
    Good,
    /// All erased.
    Unset,
    /// Anything else (torn write, tampering, image data).
    Bad,
}

/// State of a one-byte trailer flag (copy_done, image_ok).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// Erased.
    Unset,
    /// 0x01.
    Set,
    /// Neither erased nor 0x01 (treated as written; see the module docs).
    Bad,
}

impl Flag {
    /// Whether a write of this flag was at least started.
    pub const fn is_written(self) -> bool {
        !matches!(self, Self::Unset)
    }

    fn decode(b: u8, erased: u8) -> Self {
        if b == erased {
            Self::Unset
        } else if b == 0x01 {
            Self::Set
        } else {
            Self::Bad
        }
    }
}

/// MCUboot's swap types (the low nibble of swap_info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwapKind {
    /// Trial swap: run the secondary image once; revert unless it confirms itself.
    Test,
    /// Permanent swap.
    Perm,
    /// Swap back after an unconfirmed trial.
    Revert,
}

impl SwapKind {
    /// MCUboot's `BOOT_SWAP_TYPE_*` value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Test => 2,
            Self::Perm => 3,
            Self::Revert => 4,
        }
    }

    /// From a `BOOT_SWAP_TYPE_*` value.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            2 => Some(Self::Test),
            3 => Some(Self::Perm),
            4 => Some(Self::Revert),
            _ => None,
        }
    }
}

impl fmt::Display for SwapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Test => "test",
            Self::Perm => "permanent",
            Self::Revert => "revert",
        })
    }
}

/// The decoded trailer of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotTrailer {
    /// The magic.
    pub magic: Magic,
    /// Raw swap_info byte (`None` when erased).
    pub swap_info: Option<u8>,
    /// copy_done.
    pub copy_done: Flag,
    /// image_ok.
    pub image_ok: Flag,
    /// swap_size (`None` when erased).
    pub swap_size: Option<u32>,
}

impl SlotTrailer {
    /// A fully erased trailer.
    pub const ERASED: Self = Self {
        magic: Magic::Unset,
        swap_info: None,
        copy_done: Flag::Unset,
        image_ok: Flag::Unset,
        swap_size: None,
    };

    /// The swap type recorded in swap_info, if valid.
    pub fn swap_kind(&self) -> Option<SwapKind> {
        self.swap_info.and_then(|b| SwapKind::from_code(b & 0x0f))
    }

    /// Reads and decodes the trailer of a slot.
    pub fn read(
        flash: &mut dyn BootFlash,
        layout: &Layout,
        slot: Slot,
    ) -> Result<Self, FlashError> {
        let r = layout.slot(slot);
        let t = &layout.trailer;
        let e = layout.erased;
        let mut magic = [0u8; 16];
        flash.read(r.offset + t.magic_off(r.size), &mut magic)?;
        let magic = if magic == t.magic() {
            Magic::Good
        } else if all_erased(&magic, e) {
            Magic::Unset
        } else {
            Magic::Bad
        };
        let mut b = [0u8; 1];
        flash.read(r.offset + t.swap_info_off(r.size), &mut b)?;
        let swap_info = (b[0] != e).then_some(b[0]);
        flash.read(r.offset + t.copy_done_off(r.size), &mut b)?;
        let copy_done = Flag::decode(b[0], e);
        flash.read(r.offset + t.image_ok_off(r.size), &mut b)?;
        let image_ok = Flag::decode(b[0], e);
        let mut w = [0u8; 4];
        flash.read(r.offset + t.swap_size_off(r.size), &mut w)?;
        let swap_size = (!all_erased(&w, e)).then(|| u32::from_le_bytes(w));
        Ok(Self {
            magic,
            swap_info,
            copy_done,
            image_ok,
            swap_size,
        })
    }
}

/// What the two trailers ask the bootloader to do (before any image is looked at).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    /// Boot the primary slot as it is.
    None,
    /// Start a swap of this kind.
    Swap(SwapKind),
    /// Finish the swap of this kind that power loss interrupted.
    Resume(SwapKind),
}

/// Whether the primary trailer records a swap that was interrupted.
pub fn interrupted_swap(primary: &SlotTrailer, secondary: &SlotTrailer) -> Option<SwapKind> {
    if primary.magic == Magic::Good
        && primary.copy_done == Flag::Unset
        && secondary.magic != Magic::Good
    {
        primary.swap_kind()
    } else {
        None
    }
}

/// MCUboot's decision tables for a new swap (see the module docs).
pub fn new_swap_request(primary: &SlotTrailer, secondary: &SlotTrailer) -> Option<SwapKind> {
    if secondary.magic == Magic::Good {
        return Some(if secondary.image_ok.is_written() {
            SwapKind::Perm
        } else {
            SwapKind::Test
        });
    }
    if primary.magic == Magic::Good
        && primary.image_ok == Flag::Unset
        && primary.copy_done.is_written()
    {
        return Some(SwapKind::Revert);
    }
    None
}

/// Resume first, then the new-swap tables.
pub fn request(primary: &SlotTrailer, secondary: &SlotTrailer) -> Request {
    if let Some(kind) = interrupted_swap(primary, secondary) {
        return Request::Resume(kind);
    }
    match new_swap_request(primary, secondary) {
        Some(kind) => Request::Swap(kind),
        None => Request::None,
    }
}

/// Whether the image in the primary slot is on trial: swapped in by a test swap and not
/// confirmed. Such an image must not raise the security counter, and is reverted at the next
/// boot.
pub fn primary_on_trial(primary: &SlotTrailer) -> bool {
    primary.magic == Magic::Good
        && primary.image_ok == Flag::Unset
        && primary.copy_done.is_written()
}

/// Writes one trailer field: `value` at slot offset `off`, padded with erased bytes to whole
/// write units.
pub(crate) fn write_field(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    slot: Region,
    off: u32,
    value: &[u8],
) -> Result<(), FlashError> {
    let w = layout.trailer.write_size;
    let start = off - off % w;
    let lead = (off - start) as usize;
    let len = (lead + value.len()).div_ceil(w as usize) * w as usize;
    let mut buf = [layout.erased; 64];
    buf[lead..lead + value.len()].copy_from_slice(value);
    flash.write(slot.offset + start, &buf[..len])
}

/// Writes the magic of `slot`.
pub(crate) fn write_magic(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    slot: Slot,
) -> Result<(), FlashError> {
    let r = layout.slot(slot);
    write_field(
        flash,
        layout,
        r,
        layout.trailer.magic_off(r.size),
        &layout.trailer.magic(),
    )
}

/// Sets image_ok of `slot` to 0x01.
pub(crate) fn write_image_ok(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    slot: Slot,
) -> Result<(), FlashError> {
    let r = layout.slot(slot);
    write_field(flash, layout, r, layout.trailer.image_ok_off(r.size), &[1])
}

/// Sets copy_done of `slot` to 0x01.
pub(crate) fn write_copy_done(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    slot: Slot,
) -> Result<(), FlashError> {
    let r = layout.slot(slot);
    write_field(flash, layout, r, layout.trailer.copy_done_off(r.size), &[1])
}

/// Writes swap_info (swap type, image number 0) of `slot`.
pub(crate) fn write_swap_info(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    slot: Slot,
    kind: SwapKind,
) -> Result<(), FlashError> {
    let r = layout.slot(slot);
    write_field(
        flash,
        layout,
        r,
        layout.trailer.swap_info_off(r.size),
        &[kind.code()],
    )
}

/// Writes swap_size of `slot`.
pub(crate) fn write_swap_size(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    slot: Slot,
    size: u32,
) -> Result<(), FlashError> {
    let r = layout.slot(slot);
    write_field(
        flash,
        layout,
        r,
        layout.trailer.swap_size_off(r.size),
        &size.to_le_bytes(),
    )
}

/// Erases the trailer sectors of `slot`.
pub(crate) fn erase_trailer(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    slot: Slot,
) -> Result<(), FlashError> {
    let r = layout.trailer_region(slot);
    flash.erase(r.offset, r.end())
}

/// Progress recorded in the swap-status area of the primary trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Progress {
    /// Number of completed swap steps (the written prefix of the status entries).
    pub done: u32,
    /// False when a written entry follows an erased one: the status area was tampered with
    /// (ironroot never writes it out of order). The written prefix is still used; the
    /// image is verified before it boots in any case.
    pub consistent: bool,
}

/// Reads the swap progress of the primary slot.
pub fn read_progress(flash: &mut dyn BootFlash, layout: &Layout) -> Result<Progress, FlashError> {
    let t: &TrailerLayout = &layout.trailer;
    let r = layout.primary;
    let base = r.offset + t.status_off(r.size);
    let w = t.write_size as usize;
    let entries = 3 * t.max_sectors;
    let mut buf = [0u8; 256];
    let per = (buf.len() / w) as u32;
    let mut done = None;
    let mut consistent = true;
    let mut k = 0;
    while k < entries {
        let n = per.min(entries - k);
        let chunk = &mut buf[..n as usize * w];
        flash.read(base + k * w as u32, chunk)?;
        for (i, entry) in chunk.chunks_exact(w).enumerate() {
            let written = !all_erased(entry, layout.erased);
            match (done, written) {
                (None, false) => done = Some(k + i as u32),
                (Some(_), true) => consistent = false,
                _ => {}
            }
        }
        k += n;
    }
    Ok(Progress {
        done: done.unwrap_or(entries),
        consistent,
    })
}

/// Records completion of swap step `k`.
pub(crate) fn write_progress(
    flash: &mut dyn BootFlash,
    layout: &Layout,
    k: u32,
) -> Result<(), FlashError> {
    let t = &layout.trailer;
    let r = layout.primary;
    let off = t.status_off(r.size) + k * t.write_size;
    write_field(flash, layout, r, off, &[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(magic: Magic, image_ok: Flag, copy_done: Flag, info: Option<u8>) -> SlotTrailer {
        SlotTrailer {
            magic,
            swap_info: info,
            copy_done,
            image_ok,
            swap_size: None,
        }
    }

    #[test]
    fn mcuboot_state_tables() {
        let erased = SlotTrailer::ERASED;
        // State II: secondary magic good, image_ok unset -> TEST.
        let sec_test = t(Magic::Good, Flag::Unset, Flag::Unset, None);
        assert_eq!(request(&erased, &sec_test), Request::Swap(SwapKind::Test));
        // State III: image_ok set -> PERM.
        let sec_perm = t(Magic::Good, Flag::Set, Flag::Unset, None);
        assert_eq!(request(&erased, &sec_perm), Request::Swap(SwapKind::Perm));
        // State IV: primary after a test swap -> REVERT.
        let pri_trial = t(Magic::Good, Flag::Unset, Flag::Set, Some(2));
        assert_eq!(
            request(&pri_trial, &erased),
            Request::Swap(SwapKind::Revert)
        );
        assert!(primary_on_trial(&pri_trial));
        // Confirmed: NONE.
        let pri_ok = t(Magic::Good, Flag::Set, Flag::Set, Some(2));
        assert_eq!(request(&pri_ok, &erased), Request::None);
        assert!(!primary_on_trial(&pri_ok));
        // Lower states win: a new request beats a pending revert.
        assert_eq!(
            request(&pri_trial, &sec_test),
            Request::Swap(SwapKind::Test)
        );
        // Bad secondary magic: nothing.
        let sec_bad = t(Magic::Bad, Flag::Set, Flag::Unset, None);
        assert_eq!(request(&erased, &sec_bad), Request::None);
        // imgtool --pad image flashed straight into the primary: not a resume, not a revert.
        let pri_padded = t(Magic::Good, Flag::Unset, Flag::Unset, None);
        assert_eq!(request(&pri_padded, &erased), Request::None);
    }

    #[test]
    fn interrupted_swaps_resume_only_once_the_secondary_trailer_is_gone() {
        let in_progress = t(Magic::Good, Flag::Unset, Flag::Unset, Some(3));
        let erased = SlotTrailer::ERASED;
        assert_eq!(
            request(&in_progress, &erased),
            Request::Resume(SwapKind::Perm)
        );
        let bad = t(Magic::Bad, Flag::Unset, Flag::Unset, None);
        assert_eq!(request(&in_progress, &bad), Request::Resume(SwapKind::Perm));
        // Secondary still has its request: start over.
        let sec = t(Magic::Good, Flag::Set, Flag::Unset, None);
        assert_eq!(request(&in_progress, &sec), Request::Swap(SwapKind::Perm));
    }

    #[test]
    fn torn_flags_count_as_written() {
        assert_eq!(Flag::decode(0xff, 0xff), Flag::Unset);
        assert_eq!(Flag::decode(0x01, 0xff), Flag::Set);
        assert_eq!(Flag::decode(0x03, 0xff), Flag::Bad);
        assert!(Flag::Bad.is_written());
        assert_eq!(Flag::decode(0x00, 0x00), Flag::Unset);
        let trial_torn_done = t(Magic::Good, Flag::Unset, Flag::Bad, Some(2));
        assert!(primary_on_trial(&trial_torn_done));
    }
}
