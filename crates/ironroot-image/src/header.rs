//! The 32-byte MCUboot image header, the version and the header flags.
//!
//! Layout (all little endian), as in MCUboot's `bootutil/image.h`:
//!
//! | offset | size | field                                   |
//! |-------:|-----:|-----------------------------------------|
//! | 0      | 4    | magic `0x96f3b83d`                      |
//! | 4      | 4    | load address (RAM_LOAD / ROM_FIXED)     |
//! | 8      | 2    | header size (payload starts here)       |
//! | 10     | 2    | protected TLV area size (incl. its info)|
//! | 12     | 4    | payload (image) size                    |
//! | 16     | 4    | flags                                   |
//! | 20     | 8    | version: major u8, minor u8, revision u16, build u32 |
//! | 28     | 4    | padding                                 |

use core::fmt;
use core::str::FromStr;

use crate::error::FormatError;

/// Magic number at offset 0 of every MCUboot image.
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;
/// Size of the fixed header structure; `hdr_size` may be larger (the rest is padding).
pub const IMAGE_HEADER_SIZE: usize = 32;

/// An image version `major.minor.revision+build`.
///
/// Ordering compares major, minor, revision, then build, lexicographically. MCUboot compares
/// the build number only when built with `MCUBOOT_VERSION_CMP_USE_BUILD_NUMBER`; use
/// [`ImageVersion::cmp_without_build`] for its default behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ImageVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Revision.
    pub revision: u16,
    /// Build number.
    pub build: u32,
}

impl ImageVersion {
    /// Builds a version from its four parts.
    pub const fn new(major: u8, minor: u8, revision: u16, build: u32) -> Self {
        Self {
            major,
            minor,
            revision,
            build,
        }
    }

    /// Compares major, minor and revision only (MCUboot's default comparison).
    pub fn cmp_without_build(&self, other: &Self) -> core::cmp::Ordering {
        (self.major, self.minor, self.revision).cmp(&(other.major, other.minor, other.revision))
    }

    /// The security counter imgtool derives with `-s auto`: `major << 24 | minor << 16 | revision`.
    pub const fn auto_security_counter(&self) -> u32 {
        ((self.major as u32) << 24) | ((self.minor as u32) << 16) | self.revision as u32
    }

    /// Decodes the 8-byte version structure.
    pub fn from_le_bytes(b: [u8; 8]) -> Self {
        Self {
            major: b[0],
            minor: b[1],
            revision: u16::from_le_bytes([b[2], b[3]]),
            build: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Encodes the 8-byte version structure.
    pub fn to_le_bytes(&self) -> [u8; 8] {
        let r = self.revision.to_le_bytes();
        let b = self.build.to_le_bytes();
        [self.major, self.minor, r[0], r[1], b[0], b[1], b[2], b[3]]
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}+{}",
            self.major, self.minor, self.revision, self.build
        )
    }
}

/// A version string that imgtool would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionParseError {
    /// Not of the form `maj[.min[.rev[+build]]]` with decimal parts and no leading zeros.
    Syntax,
    /// A part does not fit its field (major/minor 255, revision 65535, build 4294967295).
    OutOfRange,
}

impl fmt::Display for VersionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax => f.write_str(
                "invalid version number, expected maj.min.rev+build with later parts optional \
                 (e.g. 1.2.3+4)",
            ),
            Self::OutOfRange => f.write_str(
                "version part out of range (major and minor at most 255, revision 65535, \
                 build 4294967295)",
            ),
        }
    }
}

impl core::error::Error for VersionParseError {}

/// Parses one decimal part the way imgtool's regex does: `0` or no leading zero.
fn parse_part(s: &str) -> Result<u64, VersionParseError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(VersionParseError::Syntax);
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return Err(VersionParseError::Syntax);
    }
    if bytes.len() > 10 {
        return Err(VersionParseError::OutOfRange);
    }
    s.parse::<u64>().map_err(|_| VersionParseError::Syntax)
}

impl FromStr for ImageVersion {
    type Err = VersionParseError;

    /// Accepts exactly imgtool's grammar: `maj`, `maj.min`, `maj.min.rev`, `maj.min.rev+build`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (main, build) = match s.split_once('+') {
            Some((main, build)) => (main, Some(build)),
            None => (s, None),
        };
        let mut parts = main.split('.');
        let major = parse_part(parts.next().ok_or(VersionParseError::Syntax)?)?;
        let minor = parts.next().map(parse_part).transpose()?;
        let revision = parts.next().map(parse_part).transpose()?;
        if parts.next().is_some() {
            return Err(VersionParseError::Syntax);
        }
        // imgtool only allows +build after a full maj.min.rev.
        if build.is_some() && revision.is_none() {
            return Err(VersionParseError::Syntax);
        }
        let build = build.map(parse_part).transpose()?;
        let range = |v: u64, max: u64| {
            if v <= max {
                Ok(v)
            } else {
                Err(VersionParseError::OutOfRange)
            }
        };
        Ok(Self {
            major: range(major, 0xff)? as u8,
            minor: range(minor.unwrap_or(0), 0xff)? as u8,
            revision: range(revision.unwrap_or(0), 0xffff)? as u16,
            build: range(build.unwrap_or(0), 0xffff_ffff)? as u32,
        })
    }
}

/// The header's flag word (`IMAGE_F_*`). Unknown bits are kept and reported, never dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ImageFlags(pub u32);

impl ImageFlags {
    /// Position-independent code (not supported by MCUboot).
    pub const PIC: Self = Self(0x0000_0001);
    /// Payload encrypted with AES-128-CTR.
    pub const ENCRYPTED_AES128: Self = Self(0x0000_0004);
    /// Payload encrypted with AES-256-CTR.
    pub const ENCRYPTED_AES256: Self = Self(0x0000_0008);
    /// Not bootable on its own (split image).
    pub const NON_BOOTABLE: Self = Self(0x0000_0010);
    /// Load into RAM at `load_addr` before running.
    pub const RAM_LOAD: Self = Self(0x0000_0020);
    /// Built for a fixed flash address (`load_addr` holds it).
    pub const ROM_FIXED: Self = Self(0x0000_0100);
    /// Payload compressed with LZMA1.
    pub const COMPRESSED_LZMA1: Self = Self(0x0000_0200);
    /// Payload compressed with LZMA2.
    pub const COMPRESSED_LZMA2: Self = Self(0x0000_0400);
    /// Compressed payload uses the ARM Thumb filter.
    pub const COMPRESSED_ARM_THUMB: Self = Self(0x0000_0800);

    /// Every flag known to MCUboot, with imgtool's name for it, in imgtool's order.
    pub const KNOWN: [(&'static str, Self); 9] = [
        ("PIC", Self::PIC),
        ("ENCRYPTED_AES128", Self::ENCRYPTED_AES128),
        ("ENCRYPTED_AES256", Self::ENCRYPTED_AES256),
        ("NON_BOOTABLE", Self::NON_BOOTABLE),
        ("RAM_LOAD", Self::RAM_LOAD),
        ("ROM_FIXED", Self::ROM_FIXED),
        ("COMPRESSED_LZMA1", Self::COMPRESSED_LZMA1),
        ("COMPRESSED_LZMA2", Self::COMPRESSED_LZMA2),
        ("COMPRESSED_ARM_THUMB", Self::COMPRESSED_ARM_THUMB),
    ];

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the payload is encrypted (AES-128 or AES-256).
    pub const fn is_encrypted(self) -> bool {
        self.0 & (Self::ENCRYPTED_AES128.0 | Self::ENCRYPTED_AES256.0) != 0
    }

    /// Whether the payload is compressed.
    pub const fn is_compressed(self) -> bool {
        self.0 & (Self::COMPRESSED_LZMA1.0 | Self::COMPRESSED_LZMA2.0) != 0
    }

    /// Bits that no known flag explains.
    pub const fn unknown_bits(self) -> u32 {
        let mut known = 0;
        let mut i = 0;
        while i < Self::KNOWN.len() {
            known |= Self::KNOWN[i].1.0;
            i += 1;
        }
        self.0 & !known
    }
}

impl core::ops::BitOr for ImageFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for ImageFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// A parsed image header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageHeader {
    /// Load address (RAM_LOAD) or fixed flash address (ROM_FIXED); 0 otherwise.
    pub load_addr: u32,
    /// Size of the header area; the payload starts at this offset. At least 32.
    pub hdr_size: u16,
    /// Size of the protected TLV area including its 4-byte info header; 0 when absent.
    pub protect_tlv_size: u16,
    /// Size of the payload.
    pub img_size: u32,
    /// Flags.
    pub flags: ImageFlags,
    /// Version.
    pub version: ImageVersion,
}

impl ImageHeader {
    /// Parses and checks the 32 header bytes: magic and a header size of at least 32.
    pub fn parse(bytes: &[u8; IMAGE_HEADER_SIZE]) -> Result<Self, FormatError> {
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let magic = u32_at(0);
        if magic != IMAGE_MAGIC {
            return Err(FormatError::BadMagic { found: magic });
        }
        let hdr_size = u16_at(8);
        if usize::from(hdr_size) < IMAGE_HEADER_SIZE {
            return Err(FormatError::HeaderTooSmall { hdr_size });
        }
        let mut version = [0u8; 8];
        version.copy_from_slice(&bytes[20..28]);
        Ok(Self {
            load_addr: u32_at(4),
            hdr_size,
            protect_tlv_size: u16_at(10),
            img_size: u32_at(12),
            flags: ImageFlags(u32_at(16)),
            version: ImageVersion::from_le_bytes(version),
        })
    }

    /// Encodes the header (padding word zero, as imgtool writes it).
    pub fn to_bytes(&self) -> [u8; IMAGE_HEADER_SIZE] {
        let mut out = [0u8; IMAGE_HEADER_SIZE];
        out[0..4].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&self.load_addr.to_le_bytes());
        out[8..10].copy_from_slice(&self.hdr_size.to_le_bytes());
        out[10..12].copy_from_slice(&self.protect_tlv_size.to_le_bytes());
        out[12..16].copy_from_slice(&self.img_size.to_le_bytes());
        out[16..20].copy_from_slice(&self.flags.0.to_le_bytes());
        out[20..28].copy_from_slice(&self.version.to_le_bytes());
        out
    }

    /// Offset of the first TLV area (protected if present): `hdr_size + img_size`.
    pub fn tlv_offset(&self) -> Result<u32, FormatError> {
        u32::from(self.hdr_size)
            .checked_add(self.img_size)
            .ok_or(FormatError::SizeOverflow)
    }

    /// End of the hashed region: header, payload and protected TLV area.
    pub fn hashed_len(&self) -> Result<u32, FormatError> {
        self.tlv_offset()?
            .checked_add(u32::from(self.protect_tlv_size))
            .ok_or(FormatError::SizeOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_grammar_matches_imgtool() {
        let v: ImageVersion = "1.2.3+4".parse().unwrap();
        assert_eq!(v, ImageVersion::new(1, 2, 3, 4));
        assert_eq!(
            "7".parse::<ImageVersion>().unwrap(),
            ImageVersion::new(7, 0, 0, 0)
        );
        assert_eq!(
            "0.9".parse::<ImageVersion>().unwrap(),
            ImageVersion::new(0, 9, 0, 0)
        );
        for bad in [
            "", "1.", "01.2", "1.2.3.4", "1.2+3", "a.b", "1.2.3+", "+1", "1..2", " 1",
        ] {
            assert_eq!(
                bad.parse::<ImageVersion>(),
                Err(VersionParseError::Syntax),
                "{bad:?}"
            );
        }
        assert_eq!(
            "256.0.0".parse::<ImageVersion>(),
            Err(VersionParseError::OutOfRange)
        );
        assert_eq!(
            "1.2.65536".parse::<ImageVersion>(),
            Err(VersionParseError::OutOfRange)
        );
        assert_eq!(
            "1.2.3+4294967295".parse::<ImageVersion>().unwrap().build,
            u32::MAX
        );
    }

    #[test]
    fn auto_security_counter_is_imgtools_formula() {
        let v = ImageVersion::new(1, 2, 3, 99);
        assert_eq!(v.auto_security_counter(), 0x0102_0003);
    }

    #[test]
    fn header_round_trips() {
        let h = ImageHeader {
            load_addr: 0x2000_0000,
            hdr_size: 0x200,
            protect_tlv_size: 28,
            img_size: 1000,
            flags: ImageFlags::RAM_LOAD | ImageFlags::ENCRYPTED_AES128,
            version: ImageVersion::new(1, 2, 3, 4),
        };
        assert_eq!(ImageHeader::parse(&h.to_bytes()).unwrap(), h);
    }

    #[test]
    fn header_rejects_bad_magic_and_small_header() {
        let mut b = [0u8; 32];
        assert_eq!(
            ImageHeader::parse(&b),
            Err(FormatError::BadMagic { found: 0 })
        );
        b[0..4].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        b[8] = 16;
        assert_eq!(
            ImageHeader::parse(&b),
            Err(FormatError::HeaderTooSmall { hdr_size: 16 })
        );
    }

    #[test]
    fn flags_report_unknown_bits() {
        assert_eq!(ImageFlags(0x8000_0004).unknown_bits(), 0x8000_0000);
        assert!(ImageFlags(0x4).is_encrypted());
    }
}
