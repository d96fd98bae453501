//! Decrypting whole image files (the host-side counterpart of what a bootloader does while
//! copying an encrypted update into the primary slot).

use std::io::{self, Write};

use crate::encrypted::{DecryptionKey, PayloadDecryptor, unwrap_with_layout};
use crate::error::VerifyError;
use crate::header::ImageHeader;
use crate::layout::ImageLayout;
use crate::source::ImageSource;

/// Why decryption failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError<E: std::fmt::Debug + std::fmt::Display> {
    /// The image is malformed, unreadable, or its key cannot be unwrapped.
    #[error("{0}")]
    Image(VerifyError<E>),
    /// Writing the output failed.
    #[error("writing the decrypted image failed: {0}")]
    Write(#[from] io::Error),
}

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptOutput {
    /// The whole file with the payload decrypted in place; header (flags included), TLVs and
    /// anything after them unchanged. This is what MCUboot leaves in the primary slot, and it
    /// verifies with plain `verify`.
    Image,
    /// The plaintext payload only (including the zero padding imgtool adds before encrypting).
    Payload,
}

/// Decrypts the image in `src` with the device key `key`, writing to `out`.
pub fn decrypt_image<S, W>(
    mut src: S,
    mut out: W,
    key: &DecryptionKey,
    what: DecryptOutput,
) -> Result<ImageHeader, DecryptError<S::Error>>
where
    S: ImageSource,
    S::Error: std::fmt::Debug + std::fmt::Display,
    W: Write,
{
    let layout = ImageLayout::parse(&mut src).map_err(|e| DecryptError::Image(e.into()))?;
    let image_key = unwrap_with_layout(&mut src, &layout, key).map_err(DecryptError::Image)?;
    let mut cipher = PayloadDecryptor::new(&image_key);
    let header = layout.header;
    let payload_start = u32::from(header.hdr_size);
    let payload_end = payload_start + header.img_size; // checked by the layout parse
    let mut buf = vec![0u8; 64 * 1024];
    let mut copy = |src: &mut S,
                    out: &mut W,
                    start: u32,
                    end: u32,
                    cipher: Option<&mut PayloadDecryptor>|
     -> Result<(), DecryptError<S::Error>> {
        let mut cipher = cipher;
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(buf.len() as u32);
            let chunk = &mut buf[..n as usize];
            src.read_at(pos, chunk)
                .map_err(|error| DecryptError::Image(VerifyError::Read { offset: pos, error }))?;
            if let Some(c) = cipher.as_deref_mut() {
                c.apply(pos - payload_start, chunk);
            }
            out.write_all(chunk)?;
            pos += n;
        }
        Ok(())
    };
    match what {
        DecryptOutput::Image => {
            copy(&mut src, &mut out, 0, payload_start, None)?;
            copy(
                &mut src,
                &mut out,
                payload_start,
                payload_end,
                Some(&mut cipher),
            )?;
            let len = src.len();
            copy(&mut src, &mut out, payload_end, len, None)?;
        }
        DecryptOutput::Payload => {
            copy(
                &mut src,
                &mut out,
                payload_start,
                payload_end,
                Some(&mut cipher),
            )?;
        }
    }
    out.flush()?;
    Ok(header)
}
