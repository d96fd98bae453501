//! Simulated OTP fuses on the shared power rail, optionally persisted in a file.

use std::path::{Path, PathBuf};
use std::prelude::rust_2024::*;

use super::memory::write_atomic;
use super::power::{CutMode, Damage, Gate, Power};
use crate::otp::{OTP_WORDS, OtpBurnError, OtpCells};

/// Simulated OTP cells: every burn is one operation on the [`Power`] rail.
///
/// A burn cut with [`CutMode::Before`] burns nothing; a torn burn burns a random subset of the
/// requested bits.
#[derive(Debug, Clone)]
pub struct SimOtp {
    words: Vec<u32>,
    power: Power,
    burns: u64,
    path: Option<PathBuf>,
}

impl SimOtp {
    /// Blank fuses on `power`.
    pub fn new(power: Power) -> Self {
        Self {
            words: vec![0; OTP_WORDS],
            power,
            burns: 0,
            path: None,
        }
    }

    /// Loads fuses from a file written by [`persist`](Self::persist), or blank fuses bound to
    /// `path` when the file does not exist yet.
    pub fn open(path: &Path, power: Power) -> std::io::Result<Self> {
        let mut otp = Self::new(power);
        otp.path = Some(path.to_path_buf());
        match std::fs::read(path) {
            Ok(bytes) => {
                if bytes.len() != OTP_WORDS * 4 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "otp file {} holds {} bytes, expected {}",
                            path.display(),
                            bytes.len(),
                            OTP_WORDS * 4
                        ),
                    ));
                }
                for (w, c) in otp.words.iter_mut().zip(bytes.chunks_exact(4)) {
                    *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                Ok(otp)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(otp),
            Err(e) => Err(e),
        }
    }

    /// Writes the fuses to the file given to [`open`](Self::open) (atomically).
    pub fn persist(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        write_atomic(path, &bytes)
    }

    /// Connects these fuses to another power rail.
    pub fn rewire(&mut self, power: Power) {
        self.power = power;
    }

    /// Number of completed or attempted burns.
    pub fn burns(&self) -> u64 {
        self.burns
    }

    /// The raw words.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// Burns bits directly, bypassing the power rail: a test's way to model an attacker with a
    /// fuse programmer (it can still only burn bits, never clear them).
    pub fn burn_raw(&mut self, index: usize, bits: u32) {
        self.words[index] |= bits;
    }
}

impl OtpCells for SimOtp {
    fn word_count(&self) -> usize {
        self.words.len()
    }

    fn read_word(&self, index: usize) -> u32 {
        self.words[index]
    }

    fn burn(&mut self, index: usize, bits: u32) -> Result<(), OtpBurnError> {
        if index >= self.words.len() {
            return Err(OtpBurnError { word: index });
        }
        self.burns += 1;
        match self.power.gate() {
            Gate::Proceed => {
                self.words[index] |= bits;
                Ok(())
            }
            Gate::Cut(CutMode::Torn { seed }) => {
                let mut rng = Damage::new(seed, index as u64 ^ self.power.ops());
                self.words[index] |= bits & (rng.next() as u32);
                Err(OtpBurnError { word: index })
            }
            Gate::Cut(CutMode::Before) | Gate::Dead => Err(OtpBurnError { word: index }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::Otp;

    #[test]
    fn torn_counter_raise_never_lowers_or_invents_a_value() {
        for seed in 0..200u64 {
            for cut in 1..=2u64 {
                let power = Power::new();
                let mut otp = Otp::new(SimOtp::new(power.clone())).unwrap();
                otp.raise_counter(7).unwrap();
                power.arm(cut, CutMode::Torn { seed });
                assert!(otp.raise_counter(0x1234_5678).is_err());
                power.restore();
                let v = otp.security_counter();
                assert!(v == 7 || v == 0x1234_5678, "seed {seed}: counter {v:#x}");
                // The next raise still works and lands exactly.
                otp.raise_counter(0x2000_0000).unwrap();
                assert_eq!(otp.security_counter(), 0x2000_0000);
            }
        }
    }

    #[test]
    fn file_round_trip() {
        let dir = std::env::temp_dir().join(format!("ironroot-boot-otp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("otp.bin");
        let _ = std::fs::remove_file(&path);
        let mut otp = Otp::new(SimOtp::open(&path, Power::new()).unwrap()).unwrap();
        otp.raise_counter(3).unwrap();
        otp.cells().persist().unwrap();
        let again = Otp::new(SimOtp::open(&path, Power::new()).unwrap()).unwrap();
        assert_eq!(again.security_counter(), 3);
        std::fs::write(&path, [0u8; 5]).unwrap();
        assert!(SimOtp::open(&path, Power::new()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
