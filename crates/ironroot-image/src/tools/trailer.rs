//! The MCUboot image trailer that `--pad` writes at the end of the slot, sized as imgtool 2.5
//! sizes it.
//!
//! ```text
//! ... image | erased padding | swap status (max_sectors * 3 * align) | [enc key 0 | enc key 1]
//!           | swap_size (max_align) | swap_info (max_align) | copy_done (max_align)
//!           | image_ok (max_align) | magic (16 bytes, aligned up to max_align)   <- slot end
//! ```
//!
//! With `max_align == 8` the magic is MCUboot's classic 16 bytes; otherwise its first two bytes
//! carry `max_align` (little endian) and the other 14 are the second magic.

use std::fmt;

/// MCUboot's trailer magic for `max_align == 8`.
pub const BOOT_MAGIC: [u8; 16] = [
    0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80,
];
/// The last 14 bytes of the magic for other `max_align` values.
pub const BOOT_MAGIC_2: [u8; 14] = [
    0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a,
];
/// Default number of sectors the swap status area accounts for (imgtool `-M`).
pub const DEFAULT_MAX_SECTORS: u32 = 128;
/// Default maximum write alignment.
pub const DEFAULT_MAX_ALIGN: u32 = 8;

/// A trailer option imgtool would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrailerError {
    /// `--align` must be 1, 2, 4, 8, 16 or 32.
    BadAlign(u32),
    /// `--max-align` must be 8, 16 or 32.
    BadMaxAlign(u32),
    /// The trailer size overflows.
    TooLarge,
}

impl fmt::Display for TrailerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAlign(a) => write!(f, "invalid alignment {a} (use 1, 2, 4, 8, 16 or 32)"),
            Self::BadMaxAlign(a) => write!(f, "invalid max alignment {a} (use 8, 16 or 32)"),
            Self::TooLarge => f.write_str("trailer size overflows"),
        }
    }
}

impl std::error::Error for TrailerError {}

/// How the trailer is laid out (imgtool's `--align`, `--max-align`, `-M`, `--overwrite-only`,
/// and whether the image is encrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerLayout {
    /// Flash write alignment (`--align`).
    pub align: u32,
    /// Maximum write alignment (`--max-align`; default `max(8, align)`).
    pub max_align: u32,
    /// Sectors in the swap status area (`-M`).
    pub max_sectors: u32,
    /// Overwrite-only upgrades (no swap status, no key slots).
    pub overwrite_only: bool,
    /// Length of one stored encryption key field before alignment, when the image is
    /// encrypted: 16 (imgtool's choice even for AES-256), or the ENC TLV length with
    /// `--save-enctlv`.
    pub enc_key_field: Option<u32>,
}

fn align_up(n: u32, align: u32) -> Option<u32> {
    n.checked_add(align - 1).map(|v| v & !(align - 1))
}

impl TrailerLayout {
    /// A layout from imgtool's options; `max_align` `None` means `max(8, align)`.
    pub fn new(
        align: u32,
        max_align: Option<u32>,
        max_sectors: Option<u32>,
        overwrite_only: bool,
        enc_key_field: Option<u32>,
    ) -> Result<Self, TrailerError> {
        if !matches!(align, 1 | 2 | 4 | 8 | 16 | 32) {
            return Err(TrailerError::BadAlign(align));
        }
        let max_align = match max_align {
            None => DEFAULT_MAX_ALIGN.max(align),
            Some(m @ (8 | 16 | 32)) => m,
            Some(m) => return Err(TrailerError::BadMaxAlign(m)),
        };
        Ok(Self {
            align,
            max_align,
            max_sectors: max_sectors.unwrap_or(DEFAULT_MAX_SECTORS),
            overwrite_only,
            enc_key_field,
        })
    }

    /// Total trailer size, exactly as imgtool's `_trailer_size`.
    pub fn size(&self) -> Result<u32, TrailerError> {
        let magic_align = align_up(16, self.max_align).ok_or(TrailerError::TooLarge)?;
        if self.overwrite_only {
            return self
                .max_align
                .checked_mul(2)
                .and_then(|v| v.checked_add(magic_align))
                .ok_or(TrailerError::TooLarge);
        }
        let mut size = self
            .max_sectors
            .checked_mul(3)
            .and_then(|v| v.checked_mul(self.align))
            .ok_or(TrailerError::TooLarge)?;
        if let Some(field) = self.enc_key_field {
            let key = align_up(field, self.max_align).ok_or(TrailerError::TooLarge)?;
            size = key
                .checked_mul(2)
                .and_then(|k| size.checked_add(k))
                .ok_or(TrailerError::TooLarge)?;
        }
        size.checked_add(self.max_align * 4)
            .and_then(|s| s.checked_add(magic_align))
            .ok_or(TrailerError::TooLarge)
    }

    /// The 16 magic bytes at the very end of the slot.
    pub fn magic(&self) -> [u8; 16] {
        if self.max_align == DEFAULT_MAX_ALIGN {
            BOOT_MAGIC
        } else {
            let mut m = [0u8; 16];
            // Only 8, 16 and 32 are accepted by `new`, all below 2^16.
            m[..2].copy_from_slice(&(self.max_align as u16).to_le_bytes());
            m[2..].copy_from_slice(&BOOT_MAGIC_2);
            m
        }
    }

    /// Distance from the slot end back to the image_ok byte, as imgtool computes it.
    pub fn image_ok_from_end(&self) -> u32 {
        align_up(16, self.max_align).unwrap_or(u32::MAX) + self.max_align
    }

    /// The trailer bytes (erased value everywhere but the magic and, when `confirm`, image_ok).
    /// imgtool sets image_ok only for swap upgrades; `--test` leaves it erased.
    pub fn bytes(&self, erased: u8, confirm: bool) -> Result<Vec<u8>, TrailerError> {
        let size = self.size()? as usize;
        let mut t = vec![erased; size];
        t[size - 16..].copy_from_slice(&self.magic());
        if confirm && !self.overwrite_only {
            let idx = size - self.image_ok_from_end() as usize;
            t[idx] = 0x01;
        }
        Ok(t)
    }
}

/// Trailer fields as `imgtool dumpinfo` reads them from the end of a padded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrailerInfo {
    /// The last 16 bytes of the file.
    pub magic: [u8; 16],
    /// Maximum alignment derived from the magic; `None` when the magic is not recognised (the
    /// other fields are then absent).
    pub max_align: Option<u32>,
    /// image_ok byte.
    pub image_ok: Option<u8>,
    /// copy_done byte.
    pub copy_done: Option<u8>,
    /// swap_info byte.
    pub swap_info: Option<u8>,
    /// swap_size (u32 little endian).
    pub swap_size: Option<u32>,
    /// Length of the two encryption-key fields when the header says the image is encrypted.
    pub key_field_len: Option<u32>,
}

impl TrailerInfo {
    /// Reads the trailer fields from the last bytes of a slot image, as imgtool's dumpinfo does.
    /// `tail` must hold at least the last `16 + 4 * 32 + 16` bytes of the file when available;
    /// shorter tails give `None`.
    pub fn parse(tail: &[u8], encrypted: bool) -> Option<Self> {
        let n = tail.len();
        let magic: [u8; 16] = tail.get(n.checked_sub(16)?..)?.try_into().ok()?;
        let max_align = if magic == BOOT_MAGIC {
            Some(8u32)
        } else if magic[2..] == BOOT_MAGIC_2 {
            Some(u32::from(u16::from_le_bytes([magic[0], magic[1]])))
        } else {
            None
        };
        let mut info = Self {
            magic,
            max_align,
            image_ok: None,
            copy_done: None,
            swap_info: None,
            swap_size: None,
            key_field_len: None,
        };
        let Some(ma) = max_align.filter(|&m| m > 0) else {
            return Some(info);
        };
        let ma = ma as usize;
        // Offsets counted back from the end, as imgtool does.
        let mut off = 16usize;
        if ma > 16 {
            off += ma - 16;
        }
        off += ma;
        info.image_ok = tail.get(n.checked_sub(off)?).copied();
        off += ma;
        info.copy_done = tail.get(n.checked_sub(off)?).copied();
        off += ma;
        info.swap_info = tail.get(n.checked_sub(off)?).copied();
        off += ma;
        let start = n.checked_sub(off)?;
        info.swap_size = tail
            .get(start..start + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if encrypted {
            info.key_field_len = align_up(16, ma as u32).map(|k| k * 2);
        }
        Some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_imgtool_formula() {
        // imgtool defaults: align 1, max_align 8, 128 sectors: 384 + 32 + 16.
        let t = TrailerLayout::new(1, None, None, false, None).unwrap();
        assert_eq!(t.size().unwrap(), 128 * 3 + 8 * 4 + 16);
        // Encrypted: two 16-byte key fields aligned to max_align.
        let t = TrailerLayout::new(4, None, Some(64), false, Some(16)).unwrap();
        assert_eq!(t.size().unwrap(), 64 * 3 * 4 + 32 + 8 * 4 + 16);
        // max_align 32: magic aligned to 32, fields 32 wide.
        let t = TrailerLayout::new(32, None, None, false, None).unwrap();
        assert_eq!(t.max_align, 32);
        assert_eq!(t.size().unwrap(), 128 * 3 * 32 + 32 * 4 + 32);
        let t = TrailerLayout::new(8, None, None, true, None).unwrap();
        assert_eq!(t.size().unwrap(), 16 + 16);
        assert_eq!(
            TrailerLayout::new(3, None, None, false, None),
            Err(TrailerError::BadAlign(3))
        );
    }

    #[test]
    fn confirm_sets_image_ok_and_parse_reads_it_back() {
        for (align, max_align) in [(1, None), (8, None), (16, None), (32, None), (4, Some(16))] {
            let t = TrailerLayout::new(align, max_align, None, false, None).unwrap();
            let bytes = t.bytes(0xff, true).unwrap();
            let info = TrailerInfo::parse(&bytes, false).unwrap();
            assert_eq!(info.max_align, Some(t.max_align));
            assert_eq!(info.image_ok, Some(1), "align {align}");
            assert_eq!(info.copy_done, Some(0xff));
            assert_eq!(info.swap_size, Some(u32::MAX));
        }
    }

    #[test]
    fn unknown_magic_stops_parsing() {
        let info = TrailerInfo::parse(&[0u8; 64], false).unwrap();
        assert_eq!(info.max_align, None);
        assert_eq!(info.image_ok, None);
        assert!(TrailerInfo::parse(&[0u8; 3], false).is_none());
    }
}
