//! TLV areas: the protected area (magic `0x6908`, covered by the hash and signature) and the
//! main area (magic `0x6907`: hash, key, signature, encryption key).
//!
//! ```text
//! hdr_size + img_size
//!   | info 0x6908 tot=protect_tlv_size | TLV | TLV | ... |   (only when protect_tlv_size > 0)
//!   | info 0x6907 tot                  | TLV | TLV | ... |
//!   TLV = type u16 LE | len u16 LE | value[len]
//! ```
//!
//! Each area's `tot` counts its 4-byte info header. Entries must tile an area exactly; an entry
//! that crosses the end of its area is an error, not something to skip.

use core::fmt;

use crate::ReadError;
use crate::error::FormatError;
use crate::source::ImageSource;

/// Magic of the main (unprotected) TLV area.
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// Magic of the protected TLV area.
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// Size of an area's info header and of each entry's header.
pub const TLV_HEADER_SIZE: u32 = 4;

/// Every TLV type of MCUboot's `bootutil/image.h`, and the vendor range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlvType {
    /// 0x01: hash of the signing key's DER SubjectPublicKeyInfo.
    KeyHash,
    /// 0x02: the signing key's DER SubjectPublicKeyInfo.
    PubKey,
    /// 0x10: SHA-256 of header, payload and protected TLVs.
    Sha256,
    /// 0x11: SHA-384 of the same.
    Sha384,
    /// 0x12: SHA-512 of the same.
    Sha512,
    /// 0x20: RSA-2048 PSS signature.
    Rsa2048,
    /// 0x21: ECDSA P-224 signature (no longer supported by MCUboot).
    Ecdsa224,
    /// 0x22: ECDSA signature, DER encoded (P-256 or P-384).
    EcdsaSig,
    /// 0x23: RSA-3072 PSS signature.
    Rsa3072,
    /// 0x24: Ed25519 signature.
    Ed25519,
    /// 0x25: the signature is over the image itself, not its digest (one byte, 1).
    SigPure,
    /// 0x30: AES key wrapped with RSA-OAEP-2048.
    EncRsa2048,
    /// 0x31: AES key wrapped with AES key wrap.
    EncKw,
    /// 0x32: AES key wrapped with ECIES-P256 (HKDF-SHA256, HMAC-SHA256).
    EncEc256,
    /// 0x33: AES key wrapped with ECIES-X25519 (HKDF-SHA256, HMAC-SHA256).
    EncX25519,
    /// 0x34: AES key wrapped with ECIES-X25519 using SHA-512.
    EncX25519Sha512,
    /// 0x40: dependency on another image's minimum version.
    Dependency,
    /// 0x50: security counter (anti-rollback).
    SecCnt,
    /// 0x60: CBOR measured-boot record.
    BootRecord,
    /// 0x70: decompressed size.
    DecompSize,
    /// 0x71: hash of the decompressed image.
    DecompSha,
    /// 0x72: signature of the decompressed image.
    DecompSignature,
    /// 0x73: compressed, decrypted size.
    CompDecSize,
    /// 0x74: vendor UUID.
    UuidVid,
    /// 0x75: image class UUID.
    UuidCid,
    /// Any other value (vendor-reserved `xxA0..=xxFF`, or unassigned).
    Other(u16),
}

impl TlvType {
    /// The type for a raw 16-bit value.
    pub const fn from_u16(v: u16) -> Self {
        match v {
            0x01 => Self::KeyHash,
            0x02 => Self::PubKey,
            0x10 => Self::Sha256,
            0x11 => Self::Sha384,
            0x12 => Self::Sha512,
            0x20 => Self::Rsa2048,
            0x21 => Self::Ecdsa224,
            0x22 => Self::EcdsaSig,
            0x23 => Self::Rsa3072,
            0x24 => Self::Ed25519,
            0x25 => Self::SigPure,
            0x30 => Self::EncRsa2048,
            0x31 => Self::EncKw,
            0x32 => Self::EncEc256,
            0x33 => Self::EncX25519,
            0x34 => Self::EncX25519Sha512,
            0x40 => Self::Dependency,
            0x50 => Self::SecCnt,
            0x60 => Self::BootRecord,
            0x70 => Self::DecompSize,
            0x71 => Self::DecompSha,
            0x72 => Self::DecompSignature,
            0x73 => Self::CompDecSize,
            0x74 => Self::UuidVid,
            0x75 => Self::UuidCid,
            other => Self::Other(other),
        }
    }

    /// The raw 16-bit value.
    pub const fn to_u16(self) -> u16 {
        match self {
            Self::KeyHash => 0x01,
            Self::PubKey => 0x02,
            Self::Sha256 => 0x10,
            Self::Sha384 => 0x11,
            Self::Sha512 => 0x12,
            Self::Rsa2048 => 0x20,
            Self::Ecdsa224 => 0x21,
            Self::EcdsaSig => 0x22,
            Self::Rsa3072 => 0x23,
            Self::Ed25519 => 0x24,
            Self::SigPure => 0x25,
            Self::EncRsa2048 => 0x30,
            Self::EncKw => 0x31,
            Self::EncEc256 => 0x32,
            Self::EncX25519 => 0x33,
            Self::EncX25519Sha512 => 0x34,
            Self::Dependency => 0x40,
            Self::SecCnt => 0x50,
            Self::BootRecord => 0x60,
            Self::DecompSize => 0x70,
            Self::DecompSha => 0x71,
            Self::DecompSignature => 0x72,
            Self::CompDecSize => 0x73,
            Self::UuidVid => 0x74,
            Self::UuidCid => 0x75,
            Self::Other(v) => v,
        }
    }

    /// imgtool's name for the type (`imgtool dumpinfo` prints it), or `"UNKNOWN"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::KeyHash => "KEYHASH",
            Self::PubKey => "PUBKEY",
            Self::Sha256 => "SHA256",
            Self::Sha384 => "SHA384",
            Self::Sha512 => "SHA512",
            Self::Rsa2048 => "RSA2048",
            Self::Ecdsa224 => "UNKNOWN",
            Self::EcdsaSig => "ECDSASIG",
            Self::Rsa3072 => "RSA3072",
            Self::Ed25519 => "ED25519",
            Self::SigPure => "SIG_PURE",
            Self::EncRsa2048 => "ENCRSA2048",
            Self::EncKw => "ENCKW",
            Self::EncEc256 => "ENCEC256",
            Self::EncX25519 => "ENCX25519",
            Self::EncX25519Sha512 => "ENCX25519_SHA512",
            Self::Dependency => "DEPENDENCY",
            Self::SecCnt => "SEC_CNT",
            Self::BootRecord => "BOOT_RECORD",
            Self::DecompSize => "DECOMP_SIZE",
            Self::DecompSha => "DECOMP_SHA",
            Self::DecompSignature => "DECOMP_SIGNATURE",
            Self::CompDecSize => "COMP_DEC_SIZE",
            Self::UuidVid => "UUID_VID",
            Self::UuidCid => "UUID_CID",
            Self::Other(_) => "UNKNOWN",
        }
    }

    /// Whether MCUboot (with its TLV allow-list) accepts this type outside the protected area:
    /// key, hash, signature and encryption-key TLVs only. Everything else must be protected,
    /// otherwise an attacker could add or change it without breaking the signature.
    pub const fn allowed_unprotected(self) -> bool {
        matches!(
            self,
            Self::KeyHash
                | Self::PubKey
                | Self::Sha256
                | Self::Sha384
                | Self::Sha512
                | Self::Rsa2048
                | Self::Ecdsa224
                | Self::EcdsaSig
                | Self::Rsa3072
                | Self::Ed25519
                | Self::SigPure
                | Self::EncRsa2048
                | Self::EncKw
                | Self::EncEc256
                | Self::EncX25519
                | Self::EncX25519Sha512
        )
    }

    /// Whether this type can only be meaningful outside the protected area (it describes the
    /// hashed region or is computed after it): hash and signature TLVs.
    pub const fn must_be_unprotected(self) -> bool {
        matches!(
            self,
            Self::Sha256
                | Self::Sha384
                | Self::Sha512
                | Self::Rsa2048
                | Self::Ecdsa224
                | Self::EcdsaSig
                | Self::Rsa3072
                | Self::Ed25519
        )
    }
}

impl fmt::Display for TlvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(v) => write!(f, "TLV {v:#06x}"),
            known => write!(f, "{} ({:#04x})", known.name(), known.to_u16()),
        }
    }
}

/// Where the TLV areas of an image lie. Offsets are from the start of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvAreas {
    /// Start of the protected area (= `hdr_size + img_size`); equals `main_start` when absent.
    pub protected_start: u32,
    /// Size of the protected area including its info header; 0 when absent.
    pub protected_len: u16,
    /// Start of the main area (its info header).
    pub main_start: u32,
    /// Size of the main area including its info header (the info's `tot`).
    pub main_len: u16,
}

impl TlvAreas {
    /// End of the hashed region (start of the main area).
    pub fn hashed_len(&self) -> u32 {
        self.main_start
    }

    /// Offset just past the main TLV area: the total size of the image.
    pub fn end(&self) -> u32 {
        // Cannot overflow: checked by `locate`.
        self.main_start + u32::from(self.main_len)
    }

    /// Finds and checks both area headers, as MCUboot's `bootutil_tlv_iter_begin` does, and
    /// checks that everything lies inside the source.
    pub fn locate<S: ImageSource>(
        src: &mut S,
        header: &crate::ImageHeader,
    ) -> Result<Self, ReadError<S::Error>> {
        let len = src.len();
        let protected_start = header.tlv_offset()?;
        let mut main_start = protected_start;
        let info = read_info(src, protected_start, len)?;
        if info.0 == TLV_PROT_INFO_MAGIC {
            if info.1 != header.protect_tlv_size {
                return Err(FormatError::ProtectedSizeMismatch {
                    header: header.protect_tlv_size,
                    area: info.1,
                }
                .into());
            }
            if u32::from(info.1) < TLV_HEADER_SIZE {
                return Err(FormatError::TlvAreaTooSmall { tot: info.1 }.into());
            }
            main_start = protected_start
                .checked_add(u32::from(info.1))
                .ok_or(FormatError::SizeOverflow)?;
        } else if header.protect_tlv_size != 0 {
            return Err(FormatError::BadProtectedTlvMagic { found: info.0 }.into());
        }
        let main = read_info(src, main_start, len)?;
        if main.0 != TLV_INFO_MAGIC {
            return Err(FormatError::BadTlvMagic { found: main.0 }.into());
        }
        if u32::from(main.1) < TLV_HEADER_SIZE {
            return Err(FormatError::TlvAreaTooSmall { tot: main.1 }.into());
        }
        let end = main_start
            .checked_add(u32::from(main.1))
            .ok_or(FormatError::SizeOverflow)?;
        if end > len {
            return Err(FormatError::Truncated { needed: end, len }.into());
        }
        Ok(Self {
            protected_start,
            protected_len: header.protect_tlv_size,
            main_start,
            main_len: main.1,
        })
    }

    /// Iterates over the entries of both areas, protected first.
    pub fn entries<'s, S: ImageSource>(&self, src: &'s mut S) -> TlvIter<'s, S> {
        TlvIter {
            src,
            areas: *self,
            pos: if self.protected_len > 0 {
                self.protected_start + TLV_HEADER_SIZE
            } else {
                self.main_start + TLV_HEADER_SIZE
            },
            in_protected: self.protected_len > 0,
            done: false,
        }
    }
}

/// Reads an area info header (magic, tot) at `off`.
fn read_info<S: ImageSource>(
    src: &mut S,
    off: u32,
    len: u32,
) -> Result<(u16, u16), ReadError<S::Error>> {
    let end = off
        .checked_add(TLV_HEADER_SIZE)
        .ok_or(FormatError::SizeOverflow)?;
    if end > len {
        return Err(FormatError::Truncated { needed: end, len }.into());
    }
    let mut b = [0u8; 4];
    src.read_at(off, &mut b)
        .map_err(|error| ReadError::Read { offset: off, error })?;
    Ok((
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
    ))
}

/// One TLV entry: its type, where its value lies, and whether it is in the protected area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvEntry {
    /// Type of the entry.
    pub kind: TlvType,
    /// Offset of the value (after the 4-byte entry header) from the start of the image.
    pub offset: u32,
    /// Length of the value.
    pub len: u16,
    /// Whether the entry lies in the protected area.
    pub protected: bool,
}

impl TlvEntry {
    /// Reads the value into `buf`, which must be exactly `len` bytes long.
    pub fn read_value<S: ImageSource>(
        &self,
        src: &mut S,
        buf: &mut [u8],
    ) -> Result<(), ReadError<S::Error>> {
        if buf.len() != usize::from(self.len) {
            return Err(FormatError::BadTlvLength {
                kind: self.kind,
                len: self.len,
            }
            .into());
        }
        src.read_at(self.offset, buf)
            .map_err(|error| ReadError::Read {
                offset: self.offset,
                error,
            })
    }
}

/// Iterator over the TLV entries of both areas (see [`TlvAreas::entries`]).
///
/// Yields an error and stops when an entry crosses the end of its area.
#[derive(Debug)]
pub struct TlvIter<'s, S> {
    src: &'s mut S,
    areas: TlvAreas,
    pos: u32,
    in_protected: bool,
    done: bool,
}

impl<S: ImageSource> TlvIter<'_, S> {
    /// Reads the value of an entry yielded by this iterator.
    pub fn read_value(
        &mut self,
        entry: &TlvEntry,
        buf: &mut [u8],
    ) -> Result<(), ReadError<S::Error>> {
        entry.read_value(self.src, buf)
    }

    fn next_entry(&mut self) -> Result<Option<TlvEntry>, ReadError<S::Error>> {
        loop {
            let area_end = if self.in_protected {
                self.areas.main_start
            } else {
                self.areas.end()
            };
            if self.pos == area_end {
                if self.in_protected {
                    self.in_protected = false;
                    self.pos = self.areas.main_start + TLV_HEADER_SIZE;
                    continue;
                }
                return Ok(None);
            }
            let value_start = self
                .pos
                .checked_add(TLV_HEADER_SIZE)
                .filter(|&v| v <= area_end)
                .ok_or(FormatError::TlvOverrun { offset: self.pos })?;
            let mut h = [0u8; 4];
            self.src
                .read_at(self.pos, &mut h)
                .map_err(|error| ReadError::Read {
                    offset: self.pos,
                    error,
                })?;
            let kind = TlvType::from_u16(u16::from_le_bytes([h[0], h[1]]));
            let len = u16::from_le_bytes([h[2], h[3]]);
            let value_end = value_start
                .checked_add(u32::from(len))
                .filter(|&v| v <= area_end)
                .ok_or(FormatError::TlvOverrun { offset: self.pos })?;
            let entry = TlvEntry {
                kind,
                offset: value_start,
                len,
                protected: self.in_protected,
            };
            self.pos = value_end;
            return Ok(Some(entry));
        }
    }
}

impl<S: ImageSource> Iterator for TlvIter<'_, S> {
    type Item = Result<TlvEntry, ReadError<S::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_round_trips() {
        for v in 0..=u16::MAX {
            assert_eq!(TlvType::from_u16(v).to_u16(), v);
        }
        assert_eq!(TlvType::from_u16(0x22).name(), "ECDSASIG");
        assert_eq!(TlvType::from_u16(0xa0).name(), "UNKNOWN");
    }

    #[test]
    fn allow_list_keeps_metadata_protected() {
        assert!(!TlvType::SecCnt.allowed_unprotected());
        assert!(!TlvType::Dependency.allowed_unprotected());
        assert!(!TlvType::Other(0xa0).allowed_unprotected());
        assert!(TlvType::EncEc256.allowed_unprotected());
    }
}
