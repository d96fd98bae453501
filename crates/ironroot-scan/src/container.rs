//! Recognising the container of a firmware binary: an MCUboot image (through
//! `ironroot-image`'s own parser), an ESP32/ESP8266 application image, or raw bytes.
//!
//! Detectors always run over the whole file so every offset is a file offset; the container
//! says where the payload lies and whether it can be scanned at all (an encrypted MCUboot
//! payload is AES-CTR ciphertext and hides whatever it holds).

use ironroot_image::{ImageFlags, ImageLayout};
use serde::Serialize;

/// Magic byte of an ESP application image (esptool's `ESP_IMAGE_MAGIC`).
const ESP_MAGIC: u8 = 0xe9;
/// ESP32-family header: 8-byte common header + 16-byte extended header.
const ESP32_HEADER: usize = 24;
/// ESP8266 header: the 8-byte common header only.
const ESP8266_HEADER: usize = 8;
/// esptool refuses more segments than this.
const ESP_MAX_SEGMENTS: usize = 16;

/// A byte range of the file: `offset` and `len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Offset of the first byte in the file.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// What the scanned bytes were recognised as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Container {
    /// No known container: the bytes are scanned as they are.
    Raw,
    /// An MCUboot image whose header and TLV areas parse.
    Mcuboot {
        /// The payload (firmware) region.
        payload: Region,
        /// Whether the payload is encrypted (its contents cannot be scanned).
        encrypted: bool,
    },
    /// An ESP32-family or ESP8266 application image (esptool format).
    Esp {
        /// The data region of each segment.
        segments: Vec<Region>,
    },
}

impl Container {
    /// Recognises `data`: MCUboot first (its magic is four bytes), then ESP, else raw.
    pub fn detect(data: &[u8]) -> Self {
        if let Ok(layout) = ImageLayout::parse(&mut &data[..]) {
            let h = layout.header;
            return Container::Mcuboot {
                payload: Region {
                    offset: u64::from(h.hdr_size),
                    len: u64::from(h.img_size),
                },
                encrypted: h.flags.contains(ImageFlags::ENCRYPTED_AES128)
                    || h.flags.contains(ImageFlags::ENCRYPTED_AES256),
            };
        }
        if data.first() == Some(&ESP_MAGIC) {
            // The extended header's chip id (offset 12) is small on every ESP32-family chip;
            // try that layout first, then the ESP8266 one.
            for header in [ESP32_HEADER, ESP8266_HEADER] {
                if let Some(segments) = esp_segments(data, header) {
                    return Container::Esp { segments };
                }
            }
        }
        Container::Raw
    }

    /// The container's name as in JSON (`raw`, `mcuboot`, `esp`).
    pub fn name(&self) -> &'static str {
        match self {
            Container::Raw => "raw",
            Container::Mcuboot { .. } => "mcuboot",
            Container::Esp { .. } => "esp",
        }
    }
}

/// The segments of an ESP image with a `header`-byte header, if every one fits in `data`.
fn esp_segments(data: &[u8], header: usize) -> Option<Vec<Region>> {
    let count = usize::from(*data.get(1)?);
    if count == 0 || count > ESP_MAX_SEGMENTS || data.len() < header {
        return None;
    }
    if header == ESP32_HEADER {
        let chip = u16::from_le_bytes([data[12], data[13]]);
        if chip > 0x40 {
            return None;
        }
    }
    let mut at = header;
    let mut segments = Vec::with_capacity(count);
    for _ in 0..count {
        let seg = data.get(at..at.checked_add(8)?)?;
        let len = u32::from_le_bytes([seg[4], seg[5], seg[6], seg[7]]) as usize;
        // esptool pads every segment to a multiple of 4 and writes no empty ones.
        if len == 0 || !len.is_multiple_of(4) {
            return None;
        }
        let start = at + 8;
        let end = start.checked_add(len)?;
        if end > data.len() {
            return None;
        }
        segments.push(Region {
            offset: start as u64,
            len: len as u64,
        });
        at = end;
    }
    Some(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_image_segments_are_found_and_overruns_are_raw() {
        let mut img = vec![ESP_MAGIC, 2, 2, 0x20, 0, 0, 0, 0x40];
        img.extend_from_slice(&[0u8; 16]); // extended header, chip id 0 (ESP32)
        for len in [16u32, 4] {
            img.extend_from_slice(&0x3ffb_0000u32.to_le_bytes());
            img.extend_from_slice(&len.to_le_bytes());
            img.extend(std::iter::repeat_n(0xaa, len as usize));
        }
        let Container::Esp { segments } = Container::detect(&img) else {
            panic!("not recognised as ESP");
        };
        assert_eq!(
            segments,
            [
                Region {
                    offset: 32,
                    len: 16
                },
                Region { offset: 56, len: 4 }
            ]
        );
        // The same image cut short: a segment overruns the file, so it is raw bytes.
        assert_eq!(Container::detect(&img[..50]), Container::Raw);
    }
}
