//! Structural parse of an image: header, TLV areas and the metadata TLVs, without cryptography.
//!
//! [`ImageLayout::parse`] applies MCUboot's rules (protected-area size, TLV allow-list for the
//! unprotected area) plus stricter ones of its own (entries tile their area exactly; singleton
//! TLVs appear once; fixed-size TLVs have their size). It allocates nothing.

use core::ops::Deref;

use crate::error::{FormatError, ReadError};
use crate::header::{IMAGE_HEADER_SIZE, ImageFlags, ImageHeader, ImageVersion};
use crate::source::ImageSource;
use crate::tlv::{TlvAreas, TlvEntry, TlvType};

/// Most dependency TLVs an image may carry (fixed capacity, no heap).
pub const MAX_DEPENDENCIES: usize = 8;
/// Most signature TLVs an image may carry (MCUboot allows several key/signature pairs).
pub const MAX_SIGNATURES: usize = 4;
/// Largest signature TLV accepted (MCUboot's signature buffer).
pub const MAX_SIGNATURE_LEN: u16 = 128;

/// A dependency on another image: image `image_id` must be at least `min_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dependency {
    /// Index of the image depended on (0-based).
    pub image_id: u8,
    /// Minimum version of that image.
    pub min_version: ImageVersion,
}

impl Dependency {
    /// Decodes the 12-byte DEPENDENCY TLV value: image id, 3 pad bytes, version.
    pub fn from_tlv(value: &[u8; 12]) -> Self {
        let mut v = [0u8; 8];
        v.copy_from_slice(&value[4..12]);
        Self {
            image_id: value[0],
            min_version: ImageVersion::from_le_bytes(v),
        }
    }

    /// Encodes the 12-byte DEPENDENCY TLV value.
    pub fn to_tlv(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[0] = self.image_id;
        out[4..12].copy_from_slice(&self.min_version.to_le_bytes());
        out
    }
}

/// The dependencies of an image, in TLV order (fixed capacity [`MAX_DEPENDENCIES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dependencies {
    items: [Dependency; MAX_DEPENDENCIES],
    len: usize,
}

impl Dependencies {
    fn push(&mut self, d: Dependency) -> Result<(), FormatError> {
        let slot = self
            .items
            .get_mut(self.len)
            .ok_or(FormatError::TooManyDependencies {
                max: MAX_DEPENDENCIES,
            })?;
        *slot = d;
        self.len += 1;
        Ok(())
    }

    /// The dependencies as a slice.
    pub fn as_slice(&self) -> &[Dependency] {
        &self.items[..self.len]
    }
}

impl Deref for Dependencies {
    type Target = [Dependency];
    fn deref(&self) -> &[Dependency] {
        self.as_slice()
    }
}

/// A signature TLV and the key TLV (KEYHASH or PUBKEY) just before it, if any.
///
/// As in MCUboot, a key TLV names the key for the next signature TLV only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureSlot {
    /// The KEYHASH or PUBKEY TLV naming the key.
    pub key: Option<TlvEntry>,
    /// The signature TLV.
    pub signature: TlvEntry,
}

/// Everything [`ImageLayout::parse`] learns about an image without cryptography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageLayout {
    /// The header.
    pub header: ImageHeader,
    /// Where the TLV areas are.
    pub areas: TlvAreas,
    /// The hash TLV (SHA256, SHA384 or SHA512), if any.
    pub hash: Option<TlvEntry>,
    /// Whether a SIG_PURE TLV (value 1) is present.
    pub pure: bool,
    /// Signature TLVs with their key TLVs, in order.
    pub signatures: [Option<SignatureSlot>; MAX_SIGNATURES],
    /// The security counter (protected SEC_CNT TLV), if any.
    pub security_counter: Option<u32>,
    /// Dependencies (protected DEPENDENCY TLVs).
    pub dependencies: Dependencies,
    /// The encryption key TLV (ENC_*), if any.
    pub encryption: Option<TlvEntry>,
    /// Vendor UUID (protected UUID_VID TLV), if any.
    pub vendor_id: Option<[u8; 16]>,
    /// Image class UUID (protected UUID_CID TLV), if any.
    pub class_id: Option<[u8; 16]>,
    /// The measured-boot record TLV, if any.
    pub boot_record: Option<TlvEntry>,
}

fn set_once<T>(slot: &mut Option<T>, value: T, kind: TlvType) -> Result<(), FormatError> {
    if slot.is_some() {
        return Err(FormatError::DuplicateTlv { kind });
    }
    *slot = Some(value);
    Ok(())
}

fn expect_len(entry: &TlvEntry, len: u16) -> Result<(), FormatError> {
    if entry.len == len {
        Ok(())
    } else {
        Err(FormatError::BadTlvLength {
            kind: entry.kind,
            len: entry.len,
        })
    }
}

impl ImageLayout {
    /// Reads and checks the header and both TLV areas of the image in `src`.
    pub fn parse<S: ImageSource>(src: &mut S) -> Result<Self, ReadError<S::Error>> {
        let len = src.len();
        if (len as usize) < IMAGE_HEADER_SIZE {
            return Err(FormatError::Truncated {
                needed: IMAGE_HEADER_SIZE as u32,
                len,
            }
            .into());
        }
        let mut raw = [0u8; IMAGE_HEADER_SIZE];
        src.read_at(0, &mut raw)
            .map_err(|error| ReadError::Read { offset: 0, error })?;
        let header = ImageHeader::parse(&raw)?;
        if header.flags.contains(ImageFlags::ENCRYPTED_AES128)
            && header.flags.contains(ImageFlags::ENCRYPTED_AES256)
        {
            return Err(FormatError::ConflictingEncryptionFlags.into());
        }
        let areas = TlvAreas::locate(src, &header)?;

        let mut layout = Self {
            header,
            areas,
            hash: None,
            pure: false,
            signatures: [None; MAX_SIGNATURES],
            security_counter: None,
            dependencies: Dependencies::default(),
            encryption: None,
            vendor_id: None,
            class_id: None,
            boot_record: None,
        };
        let mut pending_key: Option<TlvEntry> = None;
        let mut n_sigs = 0usize;
        let mut iter = areas.entries(src);
        while let Some(entry) = iter.next() {
            let entry = entry?;
            let kind = entry.kind;
            if entry.protected && kind.must_be_unprotected() {
                return Err(FormatError::MisplacedInProtected { kind }.into());
            }
            if !entry.protected && !kind.allowed_unprotected() {
                return Err(FormatError::NotProtected { kind }.into());
            }
            match kind {
                TlvType::Sha256 | TlvType::Sha384 | TlvType::Sha512 => {
                    let want = match kind {
                        TlvType::Sha256 => 32,
                        TlvType::Sha384 => 48,
                        _ => 64,
                    };
                    expect_len(&entry, want)?;
                    set_once(&mut layout.hash, entry, kind)?;
                }
                TlvType::KeyHash | TlvType::PubKey => {
                    if entry.len == 0 {
                        return Err(FormatError::BadTlvLength {
                            kind,
                            len: entry.len,
                        }
                        .into());
                    }
                    pending_key = Some(entry);
                }
                TlvType::EcdsaSig
                | TlvType::Ed25519
                | TlvType::Rsa2048
                | TlvType::Rsa3072
                | TlvType::Ecdsa224 => {
                    let bad_len = match kind {
                        TlvType::EcdsaSig => entry.len == 0 || entry.len > MAX_SIGNATURE_LEN,
                        TlvType::Ed25519 => entry.len != 64,
                        _ => entry.len == 0,
                    };
                    if bad_len {
                        return Err(FormatError::BadTlvLength {
                            kind,
                            len: entry.len,
                        }
                        .into());
                    }
                    let slot = layout.signatures.get_mut(n_sigs).ok_or(
                        FormatError::TooManySignatures {
                            max: MAX_SIGNATURES,
                        },
                    )?;
                    *slot = Some(SignatureSlot {
                        key: pending_key.take(),
                        signature: entry,
                    });
                    n_sigs += 1;
                }
                TlvType::SigPure => {
                    expect_len(&entry, 1)?;
                    let mut v = [0u8; 1];
                    iter.read_value(&entry, &mut v)?;
                    if v[0] != 1 {
                        return Err(FormatError::BadTlvValue { kind }.into());
                    }
                    if layout.pure {
                        return Err(FormatError::DuplicateTlv { kind }.into());
                    }
                    layout.pure = true;
                }
                TlvType::EncRsa2048
                | TlvType::EncKw
                | TlvType::EncEc256
                | TlvType::EncX25519
                | TlvType::EncX25519Sha512 => {
                    if layout.encryption.is_some() {
                        return Err(FormatError::DuplicateTlv { kind }.into());
                    }
                    layout.encryption = Some(entry);
                }
                TlvType::SecCnt => {
                    expect_len(&entry, 4)?;
                    let mut v = [0u8; 4];
                    iter.read_value(&entry, &mut v)?;
                    set_once(&mut layout.security_counter, u32::from_le_bytes(v), kind)?;
                }
                TlvType::Dependency => {
                    expect_len(&entry, 12)?;
                    let mut v = [0u8; 12];
                    iter.read_value(&entry, &mut v)?;
                    layout.dependencies.push(Dependency::from_tlv(&v))?;
                }
                TlvType::UuidVid | TlvType::UuidCid => {
                    expect_len(&entry, 16)?;
                    let mut v = [0u8; 16];
                    iter.read_value(&entry, &mut v)?;
                    let slot = if kind == TlvType::UuidVid {
                        &mut layout.vendor_id
                    } else {
                        &mut layout.class_id
                    };
                    set_once(slot, v, kind)?;
                }
                TlvType::BootRecord => set_once(&mut layout.boot_record, entry, kind)?,
                // Compression TLVs and vendor TLVs are protected metadata this crate reports
                // through the TLV iterator but does not interpret.
                _ => {}
            }
        }
        Ok(layout)
    }

    /// The signature slots that are present.
    pub fn signature_slots(&self) -> impl Iterator<Item = &SignatureSlot> {
        self.signatures.iter().flatten()
    }

    /// Total length of the image: header, payload and both TLV areas.
    pub fn total_len(&self) -> u32 {
        self.areas.end()
    }
}
