//! Where things live in flash: the bootloader region, the two slots, and the MCUboot image
//! trailer at the end of each slot.
//!
//! Trailer layout (offsets from the end of a slot; `A` = max alignment = max(8, write size),
//! `W` = flash write size, `N` = max sectors), exactly as MCUboot and imgtool define it:
//!
//! ```text
//! slot end - align_up(16, A)          MAGIC (the last 16 bytes of the slot)
//!          - A                        image_ok   (1 byte + padding)
//!          - A                        copy_done  (1 byte + padding)
//!          - A                        swap_info  (1 byte + padding: swap type | image << 4)
//!          - A                        swap_size  (u32 LE + padding)
//!          - 2 * align_up(16, A)      encryption key slots (only when the device decrypts;
//!                                     reserved, never written: see architecture.md)
//!          - 3 * N * W                swap status: one W-sized entry per swap step
//! ```

use core::fmt;

use crate::flash::{BootFlash, Region};

/// MCUboot's default maximum alignment; a different one changes the magic.
pub const DEFAULT_MAX_ALIGN: u32 = 8;
/// MCUboot's and imgtool's default `BOOT_MAX_IMG_SECTORS`.
pub const DEFAULT_MAX_SECTORS: u32 = 128;
/// Size of an encryption key slot before alignment (AES-128, MCUboot's default).
const ENC_KEY_SLOT: u32 = 16;
/// Size of the trailer magic.
pub const MAGIC_LEN: u32 = 16;

const fn align_up(v: u32, a: u32) -> u32 {
    v.div_ceil(a) * a
}

/// Field offsets of the image trailer, relative to the start of a slot of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrailerLayout {
    /// Flash write size (`W`): the size of one swap-status entry and of every trailer write.
    pub write_size: u32,
    /// Maximum alignment (`A`): the padding unit of every trailer field.
    pub max_align: u32,
    /// `BOOT_MAX_IMG_SECTORS` (`N`).
    pub max_sectors: u32,
    /// Whether the two encryption-key slots are reserved (device configured to decrypt).
    pub enc_slots: bool,
}

impl TrailerLayout {
    /// The trailer MCUboot and imgtool use for this write size (`max_align = max(8, W)`).
    pub const fn new(write_size: u32, max_sectors: u32, enc_slots: bool) -> Self {
        let max_align = if write_size > DEFAULT_MAX_ALIGN {
            write_size
        } else {
            DEFAULT_MAX_ALIGN
        };
        Self {
            write_size,
            max_align,
            max_sectors,
            enc_slots,
        }
    }

    /// Bytes reserved for the magic (16 rounded up to the max alignment).
    pub const fn magic_area(&self) -> u32 {
        align_up(MAGIC_LEN, self.max_align)
    }

    /// Size of the swap-status area.
    pub const fn status_len(&self) -> u32 {
        3 * self.max_sectors * self.write_size
    }

    /// Total trailer size in bytes (imgtool's `_trailer_size`).
    pub const fn size(&self) -> u32 {
        let keys = if self.enc_slots {
            2 * align_up(ENC_KEY_SLOT, self.max_align)
        } else {
            0
        };
        self.status_len() + keys + 4 * self.max_align + self.magic_area()
    }

    /// Offset of the magic in a slot of `slot_size` bytes.
    pub const fn magic_off(&self, slot_size: u32) -> u32 {
        slot_size - MAGIC_LEN
    }
    /// Offset of image_ok.
    pub const fn image_ok_off(&self, slot_size: u32) -> u32 {
        slot_size - self.magic_area() - self.max_align
    }
    /// Offset of copy_done.
    pub const fn copy_done_off(&self, slot_size: u32) -> u32 {
        self.image_ok_off(slot_size) - self.max_align
    }
    /// Offset of swap_info.
    pub const fn swap_info_off(&self, slot_size: u32) -> u32 {
        self.copy_done_off(slot_size) - self.max_align
    }
    /// Offset of swap_size.
    pub const fn swap_size_off(&self, slot_size: u32) -> u32 {
        self.swap_info_off(slot_size) - self.max_align
    }
    /// Offset of the first swap-status entry.
    pub const fn status_off(&self, slot_size: u32) -> u32 {
        slot_size - self.size()
    }

    /// The 16-byte magic for this max alignment (MCUboot's `boot_img_magic`).
    pub const fn magic(&self) -> [u8; 16] {
        if self.max_align == DEFAULT_MAX_ALIGN {
            [
                0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6,
                0x79, 0x80,
            ]
        } else {
            let a = (self.max_align as u16).to_le_bytes();
            [
                a[0], a[1], 0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f,
                0x1f, 0x8a,
            ]
        }
    }
}

/// Why a layout cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// Write size not a power of two between 1 and 32 (imgtool's `--align` choices).
    BadWriteSize {
        /// The write size.
        write_size: u32,
    },
    /// Sector size not a power of two, or smaller than the write size.
    BadSectorSize {
        /// The sector size.
        sector_size: u32,
    },
    /// A region does not start or end on a sector boundary.
    Unaligned {
        /// Which region.
        region: RegionName,
    },
    /// A region reaches past the end of the flash.
    OutOfFlash {
        /// Which region.
        region: RegionName,
    },
    /// Two regions overlap.
    Overlap {
        /// First region.
        a: RegionName,
        /// Second region.
        b: RegionName,
    },
    /// A slot is too small to hold its trailer plus at least one image sector (and, for the
    /// primary, the spare sector swap-move needs).
    SlotTooSmall {
        /// Which slot.
        region: RegionName,
    },
    /// The flash's erase unit does not divide the sector size, or its write unit does not
    /// divide the layout's write size.
    FlashMismatch {
        /// Erase size of the flash.
        erase_size: u32,
        /// Write size of the flash.
        write_size: u32,
    },
}

/// Names of the flash regions, for errors and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionName {
    /// The bootloader image region (verified by the boot ROM).
    Bootloader,
    /// The primary slot (the image that runs).
    Primary,
    /// The secondary slot (update candidate, or the previous image after a swap).
    Secondary,
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bootloader => "bootloader",
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        })
    }
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadWriteSize { write_size } => write!(
                f,
                "write size {write_size} is not one of 1, 2, 4, 8, 16, 32"
            ),
            Self::BadSectorSize { sector_size } => write!(
                f,
                "sector size {sector_size:#x} must be a power of two no smaller than the write size"
            ),
            Self::Unaligned { region } => {
                write!(
                    f,
                    "{region} region does not start and end on sector boundaries"
                )
            }
            Self::OutOfFlash { region } => {
                write!(f, "{region} region reaches past the end of flash")
            }
            Self::Overlap { a, b } => write!(f, "{a} and {b} regions overlap"),
            Self::SlotTooSmall { region } => write!(
                f,
                "{region} slot is too small for its trailer and at least one image sector"
            ),
            Self::FlashMismatch {
                erase_size,
                write_size,
            } => write!(
                f,
                "flash has erase size {erase_size:#x} and write size {write_size}, which the layout does not match"
            ),
        }
    }
}

impl core::error::Error for LayoutError {}

/// A validated flash layout: bootloader region, primary and secondary slots, trailer.
///
/// Slots are made of equal sectors of `sector_size` (the flash erase size); they may differ in
/// size. With swap-move the best use of space is a primary slot one sector larger than the
/// secondary (see [`max_image_size`](Self::max_image_size)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Where the bootloader image lives (verified by the boot ROM stage).
    pub bootloader: Region,
    /// The primary slot: the image that runs.
    pub primary: Region,
    /// The secondary slot: the update candidate, or the previous image after a swap.
    pub secondary: Region,
    /// Sector (erase unit) size.
    pub sector_size: u32,
    /// Value of an erased byte.
    pub erased: u8,
    /// The trailer at the end of each slot.
    pub trailer: TrailerLayout,
}

impl Layout {
    /// Validates a layout. `sector_size` and `write_size` must be the flash's erase and write
    /// sizes (checked again against the flash by [`check_flash`](Self::check_flash)).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bootloader: Region,
        primary: Region,
        secondary: Region,
        sector_size: u32,
        write_size: u32,
        erased: u8,
        max_sectors: u32,
        enc_slots: bool,
    ) -> Result<Self, LayoutError> {
        if !write_size.is_power_of_two() || write_size > 32 {
            return Err(LayoutError::BadWriteSize { write_size });
        }
        if !sector_size.is_power_of_two() || sector_size < write_size {
            return Err(LayoutError::BadSectorSize { sector_size });
        }
        let named = [
            (RegionName::Bootloader, bootloader),
            (RegionName::Primary, primary),
            (RegionName::Secondary, secondary),
        ];
        for (name, r) in named {
            if r.offset % sector_size != 0 || r.size % sector_size != 0 || r.size == 0 {
                return Err(LayoutError::Unaligned { region: name });
            }
            if r.offset.checked_add(r.size).is_none() {
                return Err(LayoutError::OutOfFlash { region: name });
            }
        }
        for i in 0..named.len() {
            for j in i + 1..named.len() {
                if named[i].1.overlaps(&named[j].1) {
                    return Err(LayoutError::Overlap {
                        a: named[i].0,
                        b: named[j].0,
                    });
                }
            }
        }
        let layout = Self {
            bootloader,
            primary,
            secondary,
            sector_size,
            erased,
            trailer: TrailerLayout::new(write_size, max_sectors, enc_slots),
        };
        let t = layout.trailer_sectors();
        if primary.size / sector_size < t + 2 {
            return Err(LayoutError::SlotTooSmall {
                region: RegionName::Primary,
            });
        }
        if secondary.size / sector_size < t + 1 {
            return Err(LayoutError::SlotTooSmall {
                region: RegionName::Secondary,
            });
        }
        Ok(layout)
    }

    /// Checks that a flash fits this layout: its erase unit divides the sector size, its write
    /// unit divides the trailer's write size, and it holds all regions.
    pub fn check_flash(&self, flash: &dyn BootFlash) -> Result<(), LayoutError> {
        let (es, ws) = (flash.erase_size(), flash.write_size());
        if es == 0
            || ws == 0
            || !self.sector_size.is_multiple_of(es)
            || !self.trailer.write_size.is_multiple_of(ws)
        {
            return Err(LayoutError::FlashMismatch {
                erase_size: flash.erase_size(),
                write_size: flash.write_size(),
            });
        }
        for (name, r) in [
            (RegionName::Bootloader, self.bootloader),
            (RegionName::Primary, self.primary),
            (RegionName::Secondary, self.secondary),
        ] {
            if r.end() > flash.capacity() {
                return Err(LayoutError::OutOfFlash { region: name });
            }
        }
        Ok(())
    }

    /// Sectors at the end of each slot that hold the trailer (trailer size rounded up).
    pub const fn trailer_sectors(&self) -> u32 {
        self.trailer.size().div_ceil(self.sector_size)
    }

    /// Sectors in the primary slot.
    pub const fn primary_sectors(&self) -> u32 {
        self.primary.size / self.sector_size
    }

    /// Sectors in the secondary slot.
    pub const fn secondary_sectors(&self) -> u32 {
        self.secondary.size / self.sector_size
    }

    /// Largest image (header + payload + TLVs) that can be swapped with swap-move:
    /// the primary keeps one spare sector to move its image up, both keep their trailer
    /// sectors, and the status area has room for `max_sectors` sectors.
    pub const fn max_image_size(&self) -> u32 {
        let t = self.trailer_sectors();
        let p = self.primary_sectors() - t - 1;
        let s = self.secondary_sectors() - t;
        let n = if p < s { p } else { s };
        let n = if n < self.trailer.max_sectors {
            n
        } else {
            self.trailer.max_sectors
        };
        n * self.sector_size
    }

    /// Largest image the bootloader region can hold (no trailer there).
    pub const fn max_bootloader_size(&self) -> u32 {
        self.bootloader.size
    }

    /// The region of `slot`.
    pub const fn slot(&self, slot: Slot) -> Region {
        match slot {
            Slot::Primary => self.primary,
            Slot::Secondary => self.secondary,
        }
    }

    /// The trailer sectors of `slot` as a region.
    pub const fn trailer_region(&self, slot: Slot) -> Region {
        let r = self.slot(slot);
        let len = self.trailer_sectors() * self.sector_size;
        Region::new(r.offset + r.size - len, len)
    }
}

/// One of the two image slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The slot the application runs from.
    Primary,
    /// The update slot.
    Secondary,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_size_matches_imgtool() {
        // imgtool: 128 * 3 * align + 4 * max_align + align_up(16, max_align) (+ keys).
        assert_eq!(TrailerLayout::new(8, 128, false).size(), 3072 + 32 + 16);
        assert_eq!(TrailerLayout::new(4, 128, false).size(), 1536 + 32 + 16);
        assert_eq!(TrailerLayout::new(1, 128, false).size(), 384 + 32 + 16);
        assert_eq!(TrailerLayout::new(32, 128, false).size(), 12288 + 128 + 32);
        assert_eq!(TrailerLayout::new(8, 128, true).size(), 3072 + 32 + 32 + 16);
    }

    #[test]
    fn field_offsets_match_imgtool_image_ok_index() {
        let t = TrailerLayout::new(8, 128, false);
        // imgtool: image_ok_idx = -(magic_align_size + max_align)
        assert_eq!(t.image_ok_off(0x1000), 0x1000 - 16 - 8);
        assert_eq!(t.magic_off(0x1000), 0x1000 - 16);
        let t = TrailerLayout::new(32, 128, false);
        assert_eq!(t.image_ok_off(0x8000), 0x8000 - 32 - 32);
        assert_eq!(t.magic()[..2], [32, 0]);
        assert_eq!(t.status_off(0x8000) % 32, 0);
    }

    struct Geometry(u32, u32, u32);
    impl BootFlash for Geometry {
        fn erase_size(&self) -> u32 {
            self.0
        }
        fn write_size(&self) -> u32 {
            self.1
        }
        fn capacity(&self) -> u32 {
            self.2
        }
        fn read(&mut self, _: u32, _: &mut [u8]) -> Result<(), crate::flash::FlashError> {
            Ok(())
        }
        fn write(&mut self, _: u32, _: &[u8]) -> Result<(), crate::flash::FlashError> {
            Ok(())
        }
        fn erase(&mut self, _: u32, _: u32) -> Result<(), crate::flash::FlashError> {
            Ok(())
        }
    }

    #[test]
    fn flash_units_must_divide_the_layout_units() {
        let l = Layout::new(
            Region::new(0, 0x4000),
            Region::new(0x4000, 0x21000),
            Region::new(0x25000, 0x20000),
            0x1000,
            8,
            0xff,
            128,
            false,
        )
        .unwrap();
        assert!(l.check_flash(&Geometry(0x1000, 8, 0x45000)).is_ok());
        // 1 KiB erase units, 4-byte writes: a 4 KiB sector is four erases, a trailer write two.
        assert!(l.check_flash(&Geometry(0x400, 4, 0x45000)).is_ok());
        assert!(matches!(
            l.check_flash(&Geometry(0x2000, 8, 0x45000)),
            Err(LayoutError::FlashMismatch { .. })
        ));
        assert!(matches!(
            l.check_flash(&Geometry(0x1000, 16, 0x45000)),
            Err(LayoutError::FlashMismatch { .. })
        ));
        assert!(matches!(
            l.check_flash(&Geometry(0x1000, 8, 0x44000)),
            Err(LayoutError::OutOfFlash { .. })
        ));
    }

    #[test]
    fn layout_validation() {
        let s = 0x1000;
        let ok = Layout::new(
            Region::new(0, 0x4000),
            Region::new(0x4000, 0x21000),
            Region::new(0x25000, 0x20000),
            s,
            8,
            0xff,
            128,
            false,
        )
        .unwrap();
        assert_eq!(ok.trailer_sectors(), 1);
        // primary = secondary + 1 sector: both give 31 sectors.
        assert_eq!(ok.max_image_size(), 31 * s);
        assert_eq!(
            Layout::new(
                Region::new(0, 0x4000),
                Region::new(0x3000, 0x21000),
                Region::new(0x25000, 0x20000),
                s,
                8,
                0xff,
                128,
                false
            ),
            Err(LayoutError::Overlap {
                a: RegionName::Bootloader,
                b: RegionName::Primary
            })
        );
        assert!(matches!(
            Layout::new(
                Region::new(0, 0x4000),
                Region::new(0x4000, 0x2000),
                Region::new(0x25000, 0x20000),
                s,
                8,
                0xff,
                128,
                false
            ),
            Err(LayoutError::SlotTooSmall { .. })
        ));
        assert!(matches!(
            Layout::new(
                Region::new(0, 0x4000),
                Region::new(0x4000, 0x21000),
                Region::new(0x25000, 0x20000),
                s,
                3,
                0xff,
                128,
                false
            ),
            Err(LayoutError::BadWriteSize { write_size: 3 })
        ));
    }
}
