//! A field-by-field description of an image, the data behind `dumpinfo`.
//!
//! Mirrors what `imgtool dumpinfo` reports: raw header fields, each TLV of both areas with its
//! bytes, and the trailer fields when the file extends past the TLVs (a padded slot image).
//! Unlike imgtool it refuses malformed structure with a typed error instead of printing
//! whatever the bytes happen to say.

use crate::error::ReadError;
use crate::header::ImageHeader;
use crate::layout::ImageLayout;
use crate::source::ImageSource;
use crate::tlv::{TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC, TlvType};
use crate::tools::trailer::TrailerInfo;

/// One TLV as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlvRecord {
    /// The type.
    pub kind: TlvType,
    /// The value.
    pub data: Vec<u8>,
}

/// An area's info header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AreaInfo {
    /// The magic (0x6908 protected, 0x6907 main).
    pub magic: u16,
    /// Total size including the info header.
    pub tlv_tot: u16,
}

/// Everything `dumpinfo` prints about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageDump {
    /// The header.
    pub header: ImageHeader,
    /// The protected area's info and entries, when present.
    pub protected: Option<(AreaInfo, Vec<TlvRecord>)>,
    /// The main area's info and entries.
    pub main: (AreaInfo, Vec<TlvRecord>),
    /// Trailer fields, when bytes follow the TLV area.
    pub trailer: Option<TrailerInfo>,
    /// Bytes after the main TLV area (slot padding and trailer).
    pub bytes_after_tlvs: u64,
}

/// How much of the file's end the trailer reader looks at: enough for `max_align` 32.
const TRAILER_TAIL: u32 = 16 + 16 + 4 * 32 + 16;

impl ImageDump {
    /// Reads the structure of the image in `src` (which may extend past the image, e.g. a
    /// padded slot file).
    pub fn read<S: ImageSource>(mut src: S) -> Result<Self, ReadError<S::Error>> {
        let layout = ImageLayout::parse(&mut src)?;
        let areas = layout.areas;
        let mut protected = Vec::new();
        let mut main = Vec::new();
        let mut iter = areas.entries(&mut src);
        while let Some(entry) = iter.next() {
            let entry = entry?;
            let mut data = vec![0u8; usize::from(entry.len)];
            iter.read_value(&entry, &mut data)?;
            let rec = TlvRecord {
                kind: entry.kind,
                data,
            };
            if entry.protected {
                protected.push(rec);
            } else {
                main.push(rec);
            }
        }
        let end = areas.end();
        let len = src.len();
        let trailer = if len > end {
            let tail_len = (len - end).min(TRAILER_TAIL);
            let mut tail = vec![0u8; tail_len as usize];
            let off = len - tail_len;
            src.read_at(off, &mut tail)
                .map_err(|error| ReadError::Read { offset: off, error })?;
            TrailerInfo::parse(&tail, layout.header.flags.is_encrypted())
        } else {
            None
        };
        Ok(Self {
            header: layout.header,
            protected: (areas.protected_len > 0).then_some({
                (
                    AreaInfo {
                        magic: TLV_PROT_INFO_MAGIC,
                        tlv_tot: areas.protected_len,
                    },
                    protected,
                )
            }),
            main: (
                AreaInfo {
                    magic: TLV_INFO_MAGIC,
                    tlv_tot: areas.main_len,
                },
                main,
            ),
            trailer,
            bytes_after_tlvs: u64::from(len - end),
        })
    }
}
