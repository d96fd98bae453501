//! Simulated NOR flash that enforces NOR rules and counts operations.

use std::path::{Path, PathBuf};
use std::prelude::rust_2024::*;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

use super::power::{CutMode, Damage, Gate, Power};
use crate::flash::{BootFlash, FlashError, FlashOp};

/// Geometry of a simulated flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimGeometry {
    /// Erase unit (sector) size in bytes: a power of two.
    pub erase_size: u32,
    /// Program unit in bytes: a power of two no larger than the erase size.
    pub write_size: u32,
    /// Value of an erased byte: `0xff` for most NOR parts, `0x00` for some.
    pub erased: u8,
    /// Total size: a multiple of the erase size.
    pub capacity: u32,
}

/// Why the simulator refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// Offset or length not aligned to the write or erase unit.
    NotAligned {
        /// The operation.
        op: FlashOp,
        /// Its offset.
        offset: u32,
    },
    /// The operation reaches past the end of the flash.
    OutOfBounds {
        /// The operation.
        op: FlashOp,
        /// Its offset.
        offset: u32,
    },
    /// A write targeted a byte that is not erased (NOR can only program erased cells).
    NotErased {
        /// Absolute offset of the first offending byte.
        offset: u32,
    },
    /// Power failed during, or before, this operation.
    PowerLoss {
        /// The operation.
        op: FlashOp,
        /// Its offset.
        offset: u32,
    },
}

impl SimError {
    /// Whether this error is a simulated power cut (rather than a NOR rule violation).
    pub fn is_power_loss(&self) -> bool {
        matches!(self, Self::PowerLoss { .. })
    }

    fn flash_error(&self) -> FlashError {
        let (op, offset) = match *self {
            Self::NotAligned { op, offset }
            | Self::OutOfBounds { op, offset }
            | Self::PowerLoss { op, offset } => (op, offset),
            Self::NotErased { offset } => (FlashOp::Write, offset),
        };
        FlashError {
            op,
            offset,
            kind: self.kind(),
        }
    }
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned { .. } => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds { .. } => NorFlashErrorKind::OutOfBounds,
            Self::NotErased { .. } | Self::PowerLoss { .. } => NorFlashErrorKind::Other,
        }
    }
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAligned { op, offset } => {
                write!(f, "simulated flash: {op} at {offset:#x} is not aligned")
            }
            Self::OutOfBounds { op, offset } => {
                write!(f, "simulated flash: {op} at {offset:#x} is out of bounds")
            }
            Self::NotErased { offset } => write!(
                f,
                "simulated flash: write to non-erased byte at {offset:#x} (NOR rule violated)"
            ),
            Self::PowerLoss { op, offset } => {
                write!(f, "simulated flash: power lost during {op} at {offset:#x}")
            }
        }
    }
}

impl std::error::Error for SimError {}

/// Operation counters of a simulated flash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlashStats {
    /// Read calls.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Write calls that changed the flash.
    pub writes: u64,
    /// Bytes programmed.
    pub write_bytes: u64,
    /// Sectors erased.
    pub erases: u64,
}

/// A simulated NOR flash with run-time geometry.
///
/// It enforces NOR rules — erase whole sectors, write whole aligned write units, write only
/// erased bytes — and refuses any violation with a [`SimError`] (and counts it in
/// [`violations`](Self::violations), so tests can assert there were none). Every write call
/// and every erased sector is one operation on the shared [`Power`] rail, which can cut power
/// during any of them (see [`CutMode`] for what a cut leaves behind).
#[derive(Debug, Clone)]
pub struct SimMemory {
    data: Vec<u8>,
    geo: SimGeometry,
    power: Power,
    stats: FlashStats,
    wear: Vec<u32>,
    violations: u64,
}

impl SimMemory {
    /// A fully erased flash. Panics on an impossible geometry (a test-setup bug).
    pub fn new(geo: SimGeometry, power: Power) -> Self {
        assert!(
            geo.erase_size.is_power_of_two()
                && geo.write_size.is_power_of_two()
                && geo.write_size <= geo.erase_size
                && geo.capacity.is_multiple_of(geo.erase_size),
            "invalid simulated flash geometry {geo:?}"
        );
        let sectors = (geo.capacity / geo.erase_size) as usize;
        Self {
            data: vec![geo.erased; geo.capacity as usize],
            geo,
            power,
            stats: FlashStats::default(),
            wear: vec![0; sectors],
            violations: 0,
        }
    }

    /// A flash holding `data` (its length must equal the geometry's capacity).
    pub fn from_bytes(geo: SimGeometry, power: Power, data: Vec<u8>) -> Option<Self> {
        if data.len() != geo.capacity as usize {
            return None;
        }
        let mut m = Self::new(geo, power);
        m.data = data;
        Some(m)
    }

    /// The geometry.
    pub fn geometry(&self) -> SimGeometry {
        self.geo
    }

    /// The power rail.
    pub fn power(&self) -> &Power {
        &self.power
    }

    /// Connects this flash to another power rail (a cloned flash shares its original's rail
    /// until rewired).
    pub fn rewire(&mut self, power: Power) {
        self.power = power;
    }

    /// The raw contents.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Operation counters.
    pub fn stats(&self) -> FlashStats {
        self.stats
    }

    /// Resets the operation counters (not the wear counts).
    pub fn reset_stats(&mut self) {
        self.stats = FlashStats::default();
    }

    /// Erase count of every sector since creation.
    pub fn wear(&self) -> &[u32] {
        &self.wear
    }

    /// Number of NOR-rule violations refused so far (0 in a correct bootloader).
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// Writes bytes directly, bypassing NOR rules, power and counters: how a test or the CLI
    /// puts an image into a slot "with a programmer", or how an attacker tampers with flash.
    pub fn program_raw(&mut self, offset: u32, bytes: &[u8]) {
        let o = offset as usize;
        self.data[o..o + bytes.len()].copy_from_slice(bytes);
    }

    /// Erases bytes directly (sets them to the erased value), bypassing rules and counters.
    pub fn erase_raw(&mut self, offset: u32, len: u32) {
        let e = self.geo.erased;
        self.data[offset as usize..(offset + len) as usize].fill(e);
    }

    fn refuse(&mut self, e: SimError) -> SimError {
        if !e.is_power_loss() {
            self.violations += 1;
        }
        e
    }

    fn check(&mut self, op: FlashOp, offset: u32, len: u32, align: u32) -> Result<(), SimError> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.geo.capacity) {
            return Err(self.refuse(SimError::OutOfBounds { op, offset }));
        }
        if !offset.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(self.refuse(SimError::NotAligned { op, offset }));
        }
        Ok(())
    }

    /// Reads bytes (reads are not operations on the power rail, but fail while power is off).
    pub fn read_bytes(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), SimError> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        self.check(FlashOp::Read, offset, len, 1)?;
        if self.power.is_lost() {
            return Err(SimError::PowerLoss {
                op: FlashOp::Read,
                offset,
            });
        }
        let o = offset as usize;
        buf.copy_from_slice(&self.data[o..o + buf.len()]);
        self.stats.reads += 1;
        self.stats.read_bytes += buf.len() as u64;
        Ok(())
    }

    /// Programs bytes under NOR rules.
    pub fn write_bytes(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.check(FlashOp::Write, offset, len, self.geo.write_size)?;
        let o = offset as usize;
        let erased = self.geo.erased;
        if let Some(i) = self.data[o..o + bytes.len()]
            .iter()
            .position(|&b| b != erased)
        {
            return Err(self.refuse(SimError::NotErased {
                offset: offset + i as u32,
            }));
        }
        let lost = SimError::PowerLoss {
            op: FlashOp::Write,
            offset,
        };
        match self.power.gate() {
            Gate::Dead => return Err(lost),
            Gate::Cut(CutMode::Before) => return Err(lost),
            Gate::Cut(CutMode::Torn { seed }) => {
                self.tear_write(offset, bytes, seed);
                return Err(lost);
            }
            Gate::Proceed => {}
        }
        self.data[o..o + bytes.len()].copy_from_slice(bytes);
        self.stats.writes += 1;
        self.stats.write_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Erases whole sectors; each sector is one operation on the power rail.
    pub fn erase_sectors(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        if to < from {
            return Err(self.refuse(SimError::OutOfBounds {
                op: FlashOp::Erase,
                offset: from,
            }));
        }
        self.check(FlashOp::Erase, from, to - from, self.geo.erase_size)?;
        let es = self.geo.erase_size;
        let mut sector = from;
        while sector < to {
            let lost = SimError::PowerLoss {
                op: FlashOp::Erase,
                offset: sector,
            };
            match self.power.gate() {
                Gate::Dead | Gate::Cut(CutMode::Before) => return Err(lost),
                Gate::Cut(CutMode::Torn { seed }) => {
                    self.tear_erase(sector, seed);
                    return Err(lost);
                }
                Gate::Proceed => {}
            }
            let s = sector as usize;
            self.data[s..s + es as usize].fill(self.geo.erased);
            self.stats.erases += 1;
            self.wear[(sector / es) as usize] += 1;
            sector += es;
        }
        Ok(())
    }

    /// A programmed bit moves away from the erased state; a partial program moves only some.
    fn tear_write(&mut self, offset: u32, bytes: &[u8], seed: u64) {
        let mut rng = Damage::new(seed, u64::from(offset) ^ self.power.ops());
        let ws = self.geo.write_size as usize;
        let units = bytes.len() / ws;
        let done = rng.below(units as u64 + 1) as usize;
        let o = offset as usize;
        // Units before the tear point are fully programmed.
        self.data[o..o + done * ws].copy_from_slice(&bytes[..done * ws]);
        // The unit at the tear point is partly programmed: a random subset of its bits.
        if done < units {
            let erased = self.geo.erased;
            let unit = done * ws..(done + 1) * ws;
            for (cell, &target) in self.data[o + unit.start..o + unit.end]
                .iter_mut()
                .zip(&bytes[unit])
            {
                let mask = rng.byte();
                *cell = if erased == 0xff {
                    // Programming clears bits; keep a random subset of them uncleared.
                    target | (mask & !target)
                } else {
                    // Programming sets bits; set only a random subset.
                    target & mask
                };
            }
        }
    }

    /// An interrupted erase leaves the sector undefined: each byte as it was, erased, partly
    /// erased (some bits moved to the erased state) or random.
    fn tear_erase(&mut self, sector: u32, seed: u64) {
        let mut rng = Damage::new(seed, u64::from(sector) ^ self.power.ops().rotate_left(17));
        let s = sector as usize;
        let erased = self.geo.erased;
        for b in &mut self.data[s..s + self.geo.erase_size as usize] {
            *b = match rng.below(4) {
                0 => *b,
                1 => erased,
                2 => {
                    let m = rng.byte();
                    if erased == 0xff { *b | m } else { *b & m }
                }
                _ => rng.byte(),
            };
        }
    }
}

impl BootFlash for SimMemory {
    fn erase_size(&self) -> u32 {
        self.geo.erase_size
    }
    fn write_size(&self) -> u32 {
        self.geo.write_size
    }
    fn capacity(&self) -> u32 {
        self.geo.capacity
    }
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        self.read_bytes(offset, buf).map_err(|e| e.flash_error())
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        self.write_bytes(offset, data).map_err(|e| e.flash_error())
    }
    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.erase_sectors(from, to).map_err(|e| e.flash_error())
    }
}

/// A simulated NOR flash whose geometry is in the type, implementing `embedded-storage`'s
/// [`NorFlash`] exactly as a hardware driver would: `ERASE_SIZE` and `WRITE_SIZE` are the
/// const parameters, and the erased value is chosen at construction.
///
/// Use it through [`Nor`](crate::flash::Nor) like any driver. It wraps a [`SimMemory`] that
/// enforces NOR rules and cuts power on demand.
#[derive(Debug, Clone)]
pub struct SimFlash<const ERASE: usize, const WRITE: usize> {
    mem: SimMemory,
}

impl<const ERASE: usize, const WRITE: usize> SimFlash<ERASE, WRITE> {
    /// A fully erased flash of `capacity` bytes with the given erased value.
    pub fn new(capacity: u32, erased: u8, power: Power) -> Self {
        let geo = SimGeometry {
            erase_size: ERASE as u32,
            write_size: WRITE as u32,
            erased,
            capacity,
        };
        Self {
            mem: SimMemory::new(geo, power),
        }
    }

    /// The underlying simulated memory (contents, counters, raw programming).
    pub fn memory(&self) -> &SimMemory {
        &self.mem
    }

    /// Mutable access to the underlying simulated memory.
    pub fn memory_mut(&mut self) -> &mut SimMemory {
        &mut self.mem
    }
}

impl<const ERASE: usize, const WRITE: usize> ErrorType for SimFlash<ERASE, WRITE> {
    type Error = SimError;
}

impl<const ERASE: usize, const WRITE: usize> ReadNorFlash for SimFlash<ERASE, WRITE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.mem.read_bytes(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.mem.geo.capacity as usize
    }
}

impl<const ERASE: usize, const WRITE: usize> NorFlash for SimFlash<ERASE, WRITE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        self.mem.erase_sectors(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.mem.write_bytes(offset, bytes)
    }
}

/// A [`SimMemory`] persisted in a file: what `ironroot boot` uses as a device's flash.
///
/// The file holds the raw flash contents; [`persist`](Self::persist) writes them back
/// atomically (temporary file, then rename), so an interrupted CLI never leaves a half-written
/// flash image.
#[derive(Debug)]
pub struct FileFlash {
    mem: SimMemory,
    path: PathBuf,
}

impl FileFlash {
    /// Creates a fully erased flash file (fails if it exists).
    pub fn create(path: &Path, geo: SimGeometry) -> std::io::Result<Self> {
        let mem = SimMemory::new(geo, Power::new());
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let f = Self {
            mem,
            path: path.to_path_buf(),
        };
        f.persist()?;
        Ok(f)
    }

    /// Opens an existing flash file of this geometry.
    pub fn open(path: &Path, geo: SimGeometry, power: Power) -> std::io::Result<Self> {
        let data = std::fs::read(path)?;
        let len = data.len();
        let mem = SimMemory::from_bytes(geo, power, data).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "flash file {} holds {len} bytes but the device layout needs {}",
                    path.display(),
                    geo.capacity
                ),
            )
        })?;
        Ok(Self {
            mem,
            path: path.to_path_buf(),
        })
    }

    /// The simulated memory.
    pub fn memory(&self) -> &SimMemory {
        &self.mem
    }

    /// Mutable access to the simulated memory.
    pub fn memory_mut(&mut self) -> &mut SimMemory {
        &mut self.mem
    }

    /// Writes the contents back to the file atomically.
    pub fn persist(&self) -> std::io::Result<()> {
        write_atomic(&self.path, self.mem.as_bytes())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests;
