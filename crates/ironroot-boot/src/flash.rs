//! What the boot logic needs from flash, and the adapter from `embedded-storage`'s `NorFlash`.
//!
//! The boot logic talks to flash through [`BootFlash`], an object-safe trait whose geometry is
//! known at run time. Any `embedded_storage::nor_flash::NorFlash` driver becomes a `BootFlash`
//! by wrapping it in [`Nor`]; the boot code itself is therefore compiled once, not once per
//! flash geometry (the geometry of `NorFlash` lives in associated constants).

use core::fmt;

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};

/// The flash operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlashOp {
    /// Reading bytes.
    Read,
    /// Programming bytes.
    Write,
    /// Erasing sectors.
    Erase,
}

impl fmt::Display for FlashOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Erase => "erase",
        })
    }
}

/// A failed flash operation: which one, where, and the driver's error kind.
///
/// On real hardware a power cut never returns; in the simulator it surfaces as a `FlashError`
/// of kind `Other`, and the boot aborts exactly as the CPU would have stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashError {
    /// The operation.
    pub op: FlashOp,
    /// Absolute flash offset of the operation.
    pub offset: u32,
    /// The driver's error kind.
    pub kind: NorFlashErrorKind,
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            NorFlashErrorKind::NotAligned => "arguments not aligned",
            NorFlashErrorKind::OutOfBounds => "out of bounds",
            _ => "driver error or power loss",
        };
        write!(f, "flash {} at {:#x} failed: {why}", self.op, self.offset)
    }
}

impl core::error::Error for FlashError {}

/// The flash interface of the boot logic: byte reads, aligned writes, whole-sector erases.
///
/// Object safe, with the geometry known at run time. Implemented by [`Nor`] for any
/// `NorFlash` driver and (with the `std` feature) by the simulator's
/// [`SimMemory`](crate::sim::SimMemory).
pub trait BootFlash {
    /// Size of an erase unit (sector) in bytes.
    fn erase_size(&self) -> u32;
    /// Program granularity in bytes; writes start and end on multiples of it.
    fn write_size(&self) -> u32;
    /// Total size in bytes.
    fn capacity(&self) -> u32;
    /// Reads `buf.len()` bytes at `offset` (any alignment).
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError>;
    /// Programs `data` at `offset`; both aligned to [`write_size`](Self::write_size), and the
    /// target bytes must be erased.
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError>;
    /// Erases `from..to`; both aligned to [`erase_size`](Self::erase_size).
    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError>;
}

impl<T: BootFlash + ?Sized> BootFlash for &mut T {
    fn erase_size(&self) -> u32 {
        (**self).erase_size()
    }
    fn write_size(&self) -> u32 {
        (**self).write_size()
    }
    fn capacity(&self) -> u32 {
        (**self).capacity()
    }
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        (**self).read(offset, buf)
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        (**self).write(offset, data)
    }
    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        (**self).erase(from, to)
    }
}

/// Largest `NorFlash::READ_SIZE` that [`Nor`] bounces through its stack buffer.
pub const MAX_READ_SIZE: usize = 64;

/// Adapts an `embedded_storage` [`NorFlash`] driver to [`BootFlash`].
///
/// Reads of any alignment are served through a small stack buffer when the driver's
/// `READ_SIZE` is larger than one byte.
#[derive(Debug)]
pub struct Nor<F>(pub F);

impl<F: NorFlash> Nor<F> {
    fn fail(op: FlashOp, offset: u32, e: &F::Error) -> FlashError {
        FlashError {
            op,
            offset,
            kind: e.kind(),
        }
    }
}

/// `usize` to `u32` for flash geometry; flash larger than 4 GiB is not addressable by MCUboot.
fn geometry(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl<F: NorFlash> BootFlash for Nor<F> {
    fn erase_size(&self) -> u32 {
        geometry(F::ERASE_SIZE)
    }

    fn write_size(&self) -> u32 {
        geometry(F::WRITE_SIZE)
    }

    fn capacity(&self) -> u32 {
        geometry(self.0.capacity())
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let rs = F::READ_SIZE;
        if rs <= 1 {
            return self
                .0
                .read(offset, buf)
                .map_err(|e| Self::fail(FlashOp::Read, offset, &e));
        }
        let err = |kind| FlashError {
            op: FlashOp::Read,
            offset,
            kind,
        };
        if rs > MAX_READ_SIZE {
            return Err(err(NorFlashErrorKind::NotAligned));
        }
        let rs32 = geometry(rs);
        let mut bounce = [0u8; MAX_READ_SIZE];
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset
                .checked_add(geometry(done))
                .ok_or(err(NorFlashErrorKind::OutOfBounds))?;
            let block = pos - pos % rs32;
            let skip = (pos - block) as usize;
            self.0
                .read(block, &mut bounce[..rs])
                .map_err(|e| Self::fail(FlashOp::Read, block, &e))?;
            let take = (rs - skip).min(buf.len() - done);
            buf[done..done + take].copy_from_slice(&bounce[skip..skip + take]);
            done += take;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        self.0
            .write(offset, data)
            .map_err(|e| Self::fail(FlashOp::Write, offset, &e))
    }

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.0
            .erase(from, to)
            .map_err(|e| Self::fail(FlashOp::Erase, from, &e))
    }
}

/// A contiguous range of flash: a slot, the bootloader region, the scratch-free trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// Absolute offset of the first byte.
    pub offset: u32,
    /// Length in bytes.
    pub size: u32,
}

impl Region {
    /// A region of `size` bytes at `offset`.
    pub const fn new(offset: u32, size: u32) -> Self {
        Self { offset, size }
    }

    /// One past the last byte (saturating).
    pub const fn end(&self) -> u32 {
        self.offset.saturating_add(self.size)
    }

    /// Whether two regions share a byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.offset < other.end() && other.offset < self.end()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.offset, self.end())
    }
}

/// Whether every byte of `bytes` equals the erased value.
pub(crate) fn all_erased(bytes: &[u8], erased: u8) -> bool {
    bytes.iter().all(|&b| b == erased)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny in-memory NorFlash with READ_SIZE 4, to check the bounce-buffer reads.
    struct Words([u8; 64]);
    impl embedded_storage::nor_flash::ErrorType for Words {
        type Error = NorFlashErrorKind;
    }
    impl embedded_storage::nor_flash::ReadNorFlash for Words {
        const READ_SIZE: usize = 4;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            embedded_storage::nor_flash::check_read(self, offset, bytes.len())?;
            let o = offset as usize;
            bytes.copy_from_slice(&self.0[o..o + bytes.len()]);
            Ok(())
        }
        fn capacity(&self) -> usize {
            64
        }
    }
    impl NorFlash for Words {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = 16;
        fn erase(&mut self, _from: u32, _to: u32) -> Result<(), Self::Error> {
            Err(NorFlashErrorKind::Other)
        }
        fn write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), Self::Error> {
            Err(NorFlashErrorKind::Other)
        }
    }

    #[test]
    fn unaligned_reads_bounce_through_read_size_blocks() {
        let mut mem = [0u8; 64];
        for (i, b) in mem.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut nor = Nor(Words(mem));
        let mut buf = [0u8; 7];
        nor.read(3, &mut buf).unwrap();
        assert_eq!(buf, [3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(nor.erase_size(), 16);
        assert_eq!(nor.write_size(), 4);
        let err = nor.read(62, &mut buf).unwrap_err();
        assert_eq!(err.op, FlashOp::Read);
        assert_eq!(err.kind, NorFlashErrorKind::OutOfBounds);
        let err = nor.write(0, &[0; 4]).unwrap_err();
        assert_eq!(err.op, FlashOp::Write);
    }

    #[test]
    fn regions_overlap_only_when_sharing_a_byte() {
        let a = Region::new(0, 16);
        assert!(a.overlaps(&Region::new(15, 1)));
        assert!(!a.overlaps(&Region::new(16, 16)));
        assert_eq!(a.end(), 16);
    }
}
