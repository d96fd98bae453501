//! One-time-programmable fuses: root-of-trust key hashes, a lock bit, and a monotonic
//! security counter.
//!
//! OTP bits start at 0 and can only be burned to 1, never cleared. [`OtpCells`] is that
//! hardware (word reads, bit burns); [`Otp`] is the typed view the boot stages use. The map,
//! in 32-bit words:
//!
//! ```text
//! word  0..32   key hash slots 0..4, 8 words (SHA-256 of a DER SubjectPublicKeyInfo) each
//! word 32       control: bit 0 LOCK (no more key provisioning)
//!                        bits 8..12  slot i holds a key hash (burned after the hash words)
//!                        bits 16..20 slot i is revoked
//! word 33..     counter slots: pairs (value, !value); the counter is the largest value of a
//!               complete pair. Raising it burns the next blank pair. A burn cut by power loss
//!               leaves a pair that is neither blank nor complete (value and complement can
//!               only both be right when every bit was burned), which is skipped.
//! ```
//!
//! The counter only moves up because bits only move up: an older pair can never be made to
//! read larger than a newer one without burning a new, larger pair.

use core::fmt;

/// Number of root-of-trust key slots.
pub const KEY_SLOTS: usize = 4;
/// Number of counter pairs: how many times the security counter can be raised.
pub const COUNTER_SLOTS: usize = 64;
/// Words of the key-hash area.
const KEY_WORDS: usize = KEY_SLOTS * 8;
/// Index of the control word.
const CONTROL: usize = KEY_WORDS;
/// First word of the counter area.
const COUNTER_BASE: usize = CONTROL + 1;
/// Total number of 32-bit words the OTP map needs.
pub const OTP_WORDS: usize = COUNTER_BASE + 2 * COUNTER_SLOTS;

const LOCK_BIT: u32 = 1;
const fn valid_bit(slot: usize) -> u32 {
    1 << (8 + slot)
}
const fn revoked_bit(slot: usize) -> u32 {
    1 << (16 + slot)
}

/// Raw OTP hardware: words of bits that can only be burned from 0 to 1.
pub trait OtpCells {
    /// Number of words.
    fn word_count(&self) -> usize;
    /// Reads a word (`index < word_count()`).
    fn read_word(&self, index: usize) -> u32;
    /// Burns the 1 bits of `bits` in word `index`; bits already 1 stay 1.
    fn burn(&mut self, index: usize, bits: u32) -> Result<(), OtpBurnError>;
}

impl<T: OtpCells + ?Sized> OtpCells for &mut T {
    fn word_count(&self) -> usize {
        (**self).word_count()
    }
    fn read_word(&self, index: usize) -> u32 {
        (**self).read_word(index)
    }
    fn burn(&mut self, index: usize, bits: u32) -> Result<(), OtpBurnError> {
        (**self).burn(index, bits)
    }
}

/// The OTP hardware failed to burn a word (in the simulator: power was cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpBurnError {
    /// The word being burned.
    pub word: usize,
}

impl fmt::Display for OtpBurnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "burning OTP word {} failed", self.word)
    }
}

impl core::error::Error for OtpBurnError {}

/// Why an OTP operation was refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtpError {
    /// The OTP has fewer words than the map needs.
    TooSmall {
        /// Words present.
        words: usize,
    },
    /// The hardware failed during a burn (power loss in the simulator).
    Burn(OtpBurnError),
    /// The OTP is locked: no key hash can be added.
    Locked,
    /// All key slots are used.
    NoFreeKeySlot,
    /// No key slot with this index holds a key hash.
    NoSuchKeySlot {
        /// The slot asked for.
        slot: usize,
    },
    /// Every counter pair is used: the security counter cannot move any more.
    CounterExhausted,
}

impl From<OtpBurnError> for OtpError {
    fn from(e: OtpBurnError) -> Self {
        Self::Burn(e)
    }
}

impl fmt::Display for OtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall { words } => write!(
                f,
                "otp has {words} words but the fuse map needs {OTP_WORDS}"
            ),
            Self::Burn(e) => write!(f, "otp: {e}"),
            Self::Locked => f.write_str("otp is locked: no more key hashes can be provisioned"),
            Self::NoFreeKeySlot => write!(f, "otp: all {KEY_SLOTS} key slots are used"),
            Self::NoSuchKeySlot { slot } => write!(f, "otp: key slot {slot} holds no key hash"),
            Self::CounterExhausted => write!(
                f,
                "otp: all {COUNTER_SLOTS} security counter slots are used; the counter cannot be raised"
            ),
        }
    }
}

impl core::error::Error for OtpError {}

/// One provisioned root-of-trust key hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHashSlot {
    /// Slot index (0..[`KEY_SLOTS`]).
    pub slot: usize,
    /// SHA-256 of the key's DER SubjectPublicKeyInfo (MCUboot's KEYHASH).
    pub hash: [u8; 32],
    /// Whether the key was revoked; a revoked key verifies nothing.
    pub revoked: bool,
}

/// The result of [`Otp::raise_counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterUpdate {
    /// The counter already was at or above the requested value; nothing was burned.
    Unchanged {
        /// The counter value.
        value: u32,
    },
    /// A new counter pair was burned.
    Raised {
        /// Value before.
        from: u32,
        /// Value after.
        to: u32,
    },
}

/// Typed view of the OTP fuse map over raw [`OtpCells`].
#[derive(Debug)]
pub struct Otp<C> {
    cells: C,
}

impl<C: OtpCells> Otp<C> {
    /// Wraps the cells; fails when they are too small for the fuse map.
    pub fn new(cells: C) -> Result<Self, OtpError> {
        let words = cells.word_count();
        if words < OTP_WORDS {
            return Err(OtpError::TooSmall { words });
        }
        Ok(Self { cells })
    }

    /// The raw cells.
    pub fn cells(&self) -> &C {
        &self.cells
    }

    /// Gives the cells back.
    pub fn into_cells(self) -> C {
        self.cells
    }

    fn control(&self) -> u32 {
        self.cells.read_word(CONTROL)
    }

    /// Whether the lock bit is burned.
    pub fn is_locked(&self) -> bool {
        self.control() & LOCK_BIT != 0
    }

    /// The key hash in `slot`, if provisioned.
    pub fn key_hash(&self, slot: usize) -> Option<KeyHashSlot> {
        if slot >= KEY_SLOTS || self.control() & valid_bit(slot) == 0 {
            return None;
        }
        let mut hash = [0u8; 32];
        for (i, chunk) in hash.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.cells.read_word(slot * 8 + i).to_le_bytes());
        }
        Some(KeyHashSlot {
            slot,
            hash,
            revoked: self.control() & revoked_bit(slot) != 0,
        })
    }

    /// All provisioned key hashes, revoked ones included.
    pub fn key_hashes(&self) -> impl Iterator<Item = KeyHashSlot> + '_ {
        (0..KEY_SLOTS).filter_map(|s| self.key_hash(s))
    }

    /// Whether `hash` is a provisioned, unrevoked root-of-trust key hash.
    pub fn trusts(&self, hash: &[u8; 32]) -> bool {
        self.key_hashes().any(|k| !k.revoked && &k.hash == hash)
    }

    /// Burns a key hash into the first free slot (factory provisioning). Refused once locked.
    pub fn provision_key_hash(&mut self, hash: &[u8; 32]) -> Result<usize, OtpError> {
        if self.is_locked() {
            return Err(OtpError::Locked);
        }
        let slot = (0..KEY_SLOTS)
            .find(|&s| {
                self.control() & valid_bit(s) == 0
                    && (0..8).all(|i| self.cells.read_word(s * 8 + i) == 0)
            })
            .ok_or(OtpError::NoFreeKeySlot)?;
        for (i, chunk) in hash.chunks_exact(4).enumerate() {
            let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.cells.burn(slot * 8 + i, w)?;
        }
        // The valid bit commits the slot: a hash burn cut short is never trusted.
        self.cells.burn(CONTROL, valid_bit(slot))?;
        Ok(slot)
    }

    /// Revokes a key slot. Allowed after locking: revocation only takes trust away.
    pub fn revoke_key(&mut self, slot: usize) -> Result<(), OtpError> {
        if self.key_hash(slot).is_none() {
            return Err(OtpError::NoSuchKeySlot { slot });
        }
        Ok(self.cells.burn(CONTROL, revoked_bit(slot))?)
    }

    /// Burns the lock bit: no key hash can be provisioned afterwards.
    pub fn lock(&mut self) -> Result<(), OtpError> {
        Ok(self.cells.burn(CONTROL, LOCK_BIT)?)
    }

    fn counter_pair(&self, i: usize) -> (u32, u32) {
        (
            self.cells.read_word(COUNTER_BASE + 2 * i),
            self.cells.read_word(COUNTER_BASE + 2 * i + 1),
        )
    }

    /// The security counter: the largest value of a completely burned pair (0 when none).
    pub fn security_counter(&self) -> u32 {
        (0..COUNTER_SLOTS)
            .map(|i| self.counter_pair(i))
            .filter(|&(v, c)| c == !v)
            .map(|(v, _)| v)
            .max()
            .unwrap_or(0)
    }

    /// Counter pairs still blank: how many more times the counter can be raised.
    pub fn counter_slots_left(&self) -> usize {
        (0..COUNTER_SLOTS)
            .filter(|&i| self.counter_pair(i) == (0, 0))
            .count()
    }

    /// Raises the security counter to `to` if it is below; never lowers it.
    ///
    /// Burns the next blank pair: value first, then its complement, which completes it.
    pub fn raise_counter(&mut self, to: u32) -> Result<CounterUpdate, OtpError> {
        let from = self.security_counter();
        if to <= from {
            return Ok(CounterUpdate::Unchanged { value: from });
        }
        let i = (0..COUNTER_SLOTS)
            .find(|&i| self.counter_pair(i) == (0, 0))
            .ok_or(OtpError::CounterExhausted)?;
        self.cells.burn(COUNTER_BASE + 2 * i, to)?;
        self.cells.burn(COUNTER_BASE + 2 * i + 1, !to)?;
        Ok(CounterUpdate::Raised { from, to })
    }
}

/// OTP cells in a RAM array: a fresh, unpowered-simulation OTP for tests and host tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamOtp(pub [u32; OTP_WORDS]);

impl Default for RamOtp {
    fn default() -> Self {
        Self([0; OTP_WORDS])
    }
}

impl OtpCells for RamOtp {
    fn word_count(&self) -> usize {
        OTP_WORDS
    }
    fn read_word(&self, index: usize) -> u32 {
        self.0[index]
    }
    fn burn(&mut self, index: usize, bits: u32) -> Result<(), OtpBurnError> {
        let w = self.0.get_mut(index).ok_or(OtpBurnError { word: index })?;
        *w |= bits;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hashes_are_provisioned_locked_and_revoked() {
        let mut otp = Otp::new(RamOtp::default()).unwrap();
        let a = [0xaa; 32];
        let b = [0x00; 32];
        assert_eq!(otp.provision_key_hash(&a).unwrap(), 0);
        // An all-zero hash is still a provisioned slot (the valid bit says so).
        assert_eq!(otp.provision_key_hash(&b).unwrap(), 1);
        assert!(otp.trusts(&a) && otp.trusts(&b));
        assert!(!otp.trusts(&[0xab; 32]));
        otp.lock().unwrap();
        assert_eq!(otp.provision_key_hash(&[1; 32]), Err(OtpError::Locked));
        otp.revoke_key(0).unwrap();
        assert!(!otp.trusts(&a));
        assert!(otp.key_hash(0).unwrap().revoked);
        assert_eq!(otp.revoke_key(3), Err(OtpError::NoSuchKeySlot { slot: 3 }));
    }

    #[test]
    fn counter_only_moves_up_and_runs_out() {
        let mut otp = Otp::new(RamOtp::default()).unwrap();
        assert_eq!(otp.security_counter(), 0);
        assert_eq!(
            otp.raise_counter(5).unwrap(),
            CounterUpdate::Raised { from: 0, to: 5 }
        );
        assert_eq!(
            otp.raise_counter(3).unwrap(),
            CounterUpdate::Unchanged { value: 5 }
        );
        assert_eq!(otp.security_counter(), 5);
        for v in 6..(6 + COUNTER_SLOTS as u32 - 1) {
            otp.raise_counter(v).unwrap();
        }
        assert_eq!(otp.counter_slots_left(), 0);
        assert_eq!(otp.raise_counter(u32::MAX), Err(OtpError::CounterExhausted));
    }

    #[test]
    fn a_half_burned_counter_pair_is_ignored() {
        let mut cells = RamOtp::default();
        // Value burned, complement not yet: power was cut between the two burns.
        cells.0[COUNTER_BASE] = 9;
        let mut otp = Otp::new(cells).unwrap();
        assert_eq!(otp.security_counter(), 0);
        assert_eq!(
            otp.raise_counter(4).unwrap(),
            CounterUpdate::Raised { from: 0, to: 4 }
        );
        assert_eq!(otp.security_counter(), 4);
    }

    #[test]
    fn too_small_cells_are_refused() {
        #[derive(Debug)]
        struct Tiny;
        impl OtpCells for Tiny {
            fn word_count(&self) -> usize {
                3
            }
            fn read_word(&self, _: usize) -> u32 {
                0
            }
            fn burn(&mut self, word: usize, _: u32) -> Result<(), OtpBurnError> {
                Err(OtpBurnError { word })
            }
        }
        assert_eq!(Otp::new(Tiny).unwrap_err(), OtpError::TooSmall { words: 3 });
    }
}
