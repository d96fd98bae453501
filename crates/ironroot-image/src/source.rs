//! Where image bytes come from: memory, a flash region, a file.
//!
//! Verification reads an image through [`ImageSource`], a random-access reader of at most
//! `u32::MAX` bytes (MCUboot's address space). A bootloader implements it over its flash driver
//! and verifies images in place, without copying them into RAM.

use core::fmt;

/// Random-access, read-only view of one image (header, payload, TLV areas and anything after).
///
/// Implemented for `&[u8]` (and for `&mut S` of any source). With the `embedded-storage`
/// feature, `FlashRegion` adapts any `ReadNorFlash`.
///
/// Verification only reads inside `0..len()`; it checks every offset against `len()` before it
/// asks, so an implementation may treat an out-of-range request as an error.
pub trait ImageSource {
    /// Error of the underlying storage, carried unchanged in [`VerifyError::Read`](crate::VerifyError::Read).
    type Error;

    /// Number of readable bytes.
    fn len(&self) -> u32;

    /// Whether the source holds no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// The whole source as one slice, when it is addressable memory (RAM, memory-mapped flash).
    ///
    /// Verification then hashes in place instead of copying chunk by chunk. The default is
    /// `None`, which is always correct.
    fn as_bytes(&self) -> Option<&[u8]> {
        None
    }
}

/// A read outside a slice source: only a caller that bypasses the verifier's checks sees this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Offset of the refused read.
    pub offset: u32,
    /// Length of the refused read.
    pub len: usize,
    /// Length of the source.
    pub source_len: u32,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read of {} bytes at offset {:#x} is outside the {}-byte image",
            self.len, self.offset, self.source_len
        )
    }
}

impl core::error::Error for OutOfBounds {}

/// Length of a slice as an image length; images beyond 4 GiB are cut at `u32::MAX`, the largest
/// offset the MCUboot format can express.
fn slice_len(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

impl ImageSource for &[u8] {
    type Error = OutOfBounds;

    fn len(&self) -> u32 {
        slice_len(self)
    }

    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), OutOfBounds> {
        let refuse = OutOfBounds {
            offset,
            len: buf.len(),
            source_len: slice_len(self),
        };
        let start = usize::try_from(offset).map_err(|_| refuse)?;
        let end = start.checked_add(buf.len()).ok_or(refuse)?;
        let src = self.get(start..end).ok_or(refuse)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl<S: ImageSource + ?Sized> ImageSource for &mut S {
    type Error = S::Error;

    fn len(&self) -> u32 {
        (**self).len()
    }

    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), S::Error> {
        (**self).read_at(offset, buf)
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        (**self).as_bytes()
    }
}

/// A source that hides [`ImageSource::as_bytes`] of the source it wraps, forcing chunked reads.
///
/// Useful to measure or test the copy path that a flash-backed source takes.
#[derive(Debug)]
pub struct ChunkedOnly<S>(pub S);

impl<S: ImageSource> ImageSource for ChunkedOnly<S> {
    type Error = S::Error;

    fn len(&self) -> u32 {
        self.0.len()
    }

    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), S::Error> {
        self.0.read_at(offset, buf)
    }
}

#[cfg(feature = "embedded-storage")]
mod flash {
    use super::ImageSource;
    use core::fmt;
    use embedded_storage::nor_flash::ReadNorFlash;

    /// Largest `ReadNorFlash::READ_SIZE` that [`FlashRegion`] can bounce through its stack buffer.
    pub const MAX_READ_SIZE: usize = 64;

    /// An image stored in `len` bytes of a NOR flash starting at `base`.
    ///
    /// Unaligned reads are served through a small stack buffer, so any `READ_SIZE` up to
    /// [`MAX_READ_SIZE`] works.
    #[derive(Debug)]
    pub struct FlashRegion<F> {
        flash: F,
        base: u32,
        len: u32,
    }

    impl<F: ReadNorFlash> FlashRegion<F> {
        /// A view of `flash[base..base + len]`.
        pub fn new(flash: F, base: u32, len: u32) -> Self {
            Self { flash, base, len }
        }

        /// Gives the flash back.
        pub fn into_inner(self) -> F {
            self.flash
        }
    }

    /// A failed read from a [`FlashRegion`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum FlashReadError<E> {
        /// The flash driver failed.
        Flash(E),
        /// The read lies outside the region.
        OutOfRegion {
            /// Offset inside the region.
            offset: u32,
            /// Requested length.
            len: usize,
        },
        /// The driver's `READ_SIZE` exceeds [`MAX_READ_SIZE`].
        ReadSizeTooLarge {
            /// The driver's read granularity.
            read_size: usize,
        },
    }

    impl<E: fmt::Debug> fmt::Display for FlashReadError<E> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Flash(e) => write!(f, "flash read failed: {e:?}"),
                Self::OutOfRegion { offset, len } => {
                    write!(
                        f,
                        "read of {len} bytes at {offset:#x} is outside the flash region"
                    )
                }
                Self::ReadSizeTooLarge { read_size } => write!(
                    f,
                    "flash read size {read_size} exceeds the supported maximum {MAX_READ_SIZE}"
                ),
            }
        }
    }

    impl<F: ReadNorFlash> ImageSource for FlashRegion<F> {
        type Error = FlashReadError<F::Error>;

        fn len(&self) -> u32 {
            self.len
        }

        fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
            let len = buf.len();
            let out = || FlashReadError::OutOfRegion { offset, len };
            let n = u32::try_from(len).map_err(|_| out())?;
            let end = offset.checked_add(n).ok_or_else(out)?;
            if end > self.len {
                return Err(out());
            }
            let addr = self.base.checked_add(offset).ok_or_else(out)?;
            let rs = F::READ_SIZE;
            if rs <= 1 {
                return self.flash.read(addr, buf).map_err(FlashReadError::Flash);
            }
            let too_large = FlashReadError::ReadSizeTooLarge { read_size: rs };
            if rs > MAX_READ_SIZE {
                return Err(too_large);
            }
            let rs32 = u32::try_from(rs).map_err(|_| too_large)?;
            // Read READ_SIZE-aligned blocks through a bounce buffer.
            let mut bounce = [0u8; MAX_READ_SIZE];
            let mut done = 0usize;
            while done < len {
                let pos = addr
                    .checked_add(u32::try_from(done).map_err(|_| out())?)
                    .ok_or_else(out)?;
                let block = pos - pos % rs32;
                let skip = (pos - block) as usize;
                self.flash
                    .read(block, &mut bounce[..rs])
                    .map_err(FlashReadError::Flash)?;
                let take = (rs - skip).min(len - done);
                buf[done..done + take].copy_from_slice(&bounce[skip..skip + take]);
                done += take;
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind};

        /// In-memory flash that only accepts 8-byte aligned reads, like many real parts.
        struct AlignedFlash(Vec<u8>);

        #[derive(Debug, PartialEq)]
        struct Misaligned;

        impl NorFlashError for Misaligned {
            fn kind(&self) -> NorFlashErrorKind {
                NorFlashErrorKind::NotAligned
            }
        }

        impl ErrorType for AlignedFlash {
            type Error = Misaligned;
        }

        impl ReadNorFlash for AlignedFlash {
            const READ_SIZE: usize = 8;
            fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Misaligned> {
                if !offset.is_multiple_of(8) || !bytes.len().is_multiple_of(8) {
                    return Err(Misaligned);
                }
                let o = offset as usize;
                bytes.copy_from_slice(&self.0[o..o + bytes.len()]);
                Ok(())
            }
            fn capacity(&self) -> usize {
                self.0.len()
            }
        }

        #[test]
        fn unaligned_reads_bounce_through_aligned_blocks() {
            let data: Vec<u8> = (0..=255u8).collect();
            let mut region = FlashRegion::new(AlignedFlash(data.clone()), 16, 200);
            for (off, n) in [(0u32, 1usize), (3, 17), (5, 8), (199, 1), (100, 64)] {
                let mut buf = vec![0u8; n];
                region.read_at(off, &mut buf).unwrap();
                let start = 16 + off as usize;
                assert_eq!(buf, data[start..start + n], "offset {off} len {n}");
            }
            let mut buf = [0u8; 2];
            assert!(matches!(
                region.read_at(199, &mut buf),
                Err(FlashReadError::OutOfRegion { .. })
            ));
        }
    }
}

#[cfg(feature = "embedded-storage")]
pub use flash::{FlashReadError, FlashRegion, MAX_READ_SIZE};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reads_inside_and_refuses_outside() {
        let data = [1u8, 2, 3, 4, 5];
        let mut src: &[u8] = &data;
        let mut buf = [0u8; 2];
        src.read_at(3, &mut buf).unwrap();
        assert_eq!(buf, [4, 5]);
        let err = src.read_at(4, &mut buf).unwrap_err();
        assert_eq!(err.offset, 4);
        assert_eq!(err.source_len, 5);
        assert!(src.read_at(u32::MAX, &mut buf).is_err());
    }

    #[test]
    fn chunked_only_hides_the_slice() {
        let data = [0u8; 8];
        let src = ChunkedOnly(&data[..]);
        assert!(src.as_bytes().is_none());
        assert_eq!(src.len(), 8);
    }
}
