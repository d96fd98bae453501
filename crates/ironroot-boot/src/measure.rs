//! Measured boot: a PCR-like register extended by each stage with the digest of the image it
//! verified, and the log of those measurements that the application can read.
//!
//! ```text
//! PCR_0 = 32 zero bytes
//! PCR_n = SHA-256(PCR_{n-1} || digest_n)      digest_n = SHA-256 of the verified image
//!                                              (header, payload, protected TLVs)
//! ```
//!
//! The image digest covers the version and security counter (both are in the signed part of
//! the image), so a verifier that knows the released images' digests learns everything from
//! the PCR and the log. The log travels to the application in a fixed binary form
//! ([`MeasurementLog::encode`]); [`MeasurementLog::decode`] replays it and refuses a log
//! whose entries do not produce its PCR.

use core::fmt;

use ironroot_image::ImageVersion;
use sha2::{Digest, Sha256};

/// Most measurements one boot records (ROM + bootloader stages, with room to grow).
pub const MAX_MEASUREMENTS: usize = 4;
/// Size of one encoded entry.
const ENTRY_LEN: usize = 80;
/// Size of the encoded header (magic, format, count, reserved, PCR).
const HEADER_LEN: usize = 8 + 32;
/// Largest encoding of a log.
pub const MAX_ENCODED_LEN: usize = HEADER_LEN + MAX_MEASUREMENTS * ENTRY_LEN;
const MAGIC: [u8; 4] = *b"IRML";
const FORMAT: u8 = 1;

/// The boot stage that took a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The boot ROM (immutable first stage), which verifies the bootloader.
    Rom,
    /// The bootloader, which verifies the application.
    Bootloader,
}

/// What was measured, and where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// The bootloader image, in the bootloader region.
    Bootloader,
    /// The application image, in the primary slot.
    Application,
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Measurement {
    /// Who measured.
    pub stage: Stage,
    /// What was measured.
    pub component: Component,
    /// The image version.
    pub version: ImageVersion,
    /// The image's security counter (0 when it has none).
    pub security_counter: u32,
    /// SHA-256 of the image's signed part.
    pub digest: [u8; 32],
    /// SHA-256 of the signing key's SubjectPublicKeyInfo (the KEYHASH).
    pub signer: [u8; 32],
}

/// Why a log could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogError {
    /// The log already holds [`MAX_MEASUREMENTS`] entries.
    Full,
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The input is not an encoded measurement log (magic or format).
    NotALog,
    /// The input length does not match its entry count.
    BadLength {
        /// Length found.
        len: usize,
    },
    /// An entry holds an unknown stage or component code, or non-zero reserved bytes.
    BadEntry {
        /// Index of the entry.
        index: usize,
    },
    /// Replaying the entries does not give the recorded PCR: the log was altered.
    PcrMismatch,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => write!(f, "measurement log is full ({MAX_MEASUREMENTS} entries)"),
            Self::BufferTooSmall { needed } => {
                write!(f, "measurement log needs a {needed}-byte buffer")
            }
            Self::NotALog => f.write_str("bytes are not an ironroot measurement log"),
            Self::BadLength { len } => {
                write!(
                    f,
                    "measurement log of {len} bytes does not match its entry count"
                )
            }
            Self::BadEntry { index } => {
                write!(
                    f,
                    "measurement log entry {index} has an unknown stage or component"
                )
            }
            Self::PcrMismatch => {
                f.write_str("measurement log entries do not replay to its PCR: the log was altered")
            }
        }
    }
}

impl core::error::Error for LogError {}

/// The PCR and the measurements that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementLog {
    entries: [Option<Measurement>; MAX_MEASUREMENTS],
    len: usize,
    pcr: [u8; 32],
}

impl Default for MeasurementLog {
    fn default() -> Self {
        Self::new()
    }
}

/// `SHA-256(pcr || digest)`.
pub fn extend(pcr: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(pcr);
    h.update(digest);
    h.finalize().into()
}

impl MeasurementLog {
    /// An empty log; the PCR is zero.
    pub const fn new() -> Self {
        Self {
            entries: [None; MAX_MEASUREMENTS],
            len: 0,
            pcr: [0; 32],
        }
    }

    /// Records a measurement and extends the PCR with its digest.
    pub fn extend(&mut self, m: Measurement) -> Result<(), LogError> {
        let slot = self.entries.get_mut(self.len).ok_or(LogError::Full)?;
        *slot = Some(m);
        self.len += 1;
        self.pcr = extend(&self.pcr, &m.digest);
        Ok(())
    }

    /// The PCR value.
    pub fn pcr(&self) -> [u8; 32] {
        self.pcr
    }

    /// The measurements, in order.
    pub fn entries(&self) -> impl Iterator<Item = &Measurement> {
        self.entries.iter().flatten()
    }

    /// Number of measurements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was measured.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The PCR that `entries` produce from zero.
    pub fn replay<'a>(entries: impl IntoIterator<Item = &'a Measurement>) -> [u8; 32] {
        entries
            .into_iter()
            .fold([0u8; 32], |pcr, m| extend(&pcr, &m.digest))
    }

    /// Length of [`encode`](Self::encode)'s output.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.len * ENTRY_LEN
    }

    /// Encodes the log for the application (the boot's shared-data area). Returns the length.
    ///
    /// ```text
    /// "IRML" | format 1 | count | 0 0 | PCR (32)
    /// per entry: stage | component | 0 0 | version (8, MCUboot order) | counter (u32 LE)
    ///            | digest (32) | signer key hash (32)
    /// ```
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, LogError> {
        let needed = self.encoded_len();
        let out = out
            .get_mut(..needed)
            .ok_or(LogError::BufferTooSmall { needed })?;
        out[..4].copy_from_slice(&MAGIC);
        out[4] = FORMAT;
        out[5] = self.len as u8;
        out[6] = 0;
        out[7] = 0;
        out[8..40].copy_from_slice(&self.pcr);
        for (m, e) in self
            .entries()
            .zip(out[HEADER_LEN..].chunks_exact_mut(ENTRY_LEN))
        {
            e[0] = match m.stage {
                Stage::Rom => 1,
                Stage::Bootloader => 2,
            };
            e[1] = match m.component {
                Component::Bootloader => 1,
                Component::Application => 2,
            };
            e[2] = 0;
            e[3] = 0;
            e[4..12].copy_from_slice(&m.version.to_le_bytes());
            e[12..16].copy_from_slice(&m.security_counter.to_le_bytes());
            e[16..48].copy_from_slice(&m.digest);
            e[48..80].copy_from_slice(&m.signer);
        }
        Ok(needed)
    }

    /// Decodes and checks an encoded log: structure, then that its entries replay to its PCR.
    pub fn decode(bytes: &[u8]) -> Result<Self, LogError> {
        if bytes.len() < HEADER_LEN
            || bytes[..4] != MAGIC
            || bytes[4] != FORMAT
            || bytes[6..8] != [0, 0]
        {
            return Err(LogError::NotALog);
        }
        let count = usize::from(bytes[5]);
        if count > MAX_MEASUREMENTS || bytes.len() != HEADER_LEN + count * ENTRY_LEN {
            return Err(LogError::BadLength { len: bytes.len() });
        }
        let mut pcr = [0u8; 32];
        pcr.copy_from_slice(&bytes[8..40]);
        let mut log = Self::new();
        for (index, e) in bytes[HEADER_LEN..].chunks_exact(ENTRY_LEN).enumerate() {
            if e[2..4] != [0, 0] {
                return Err(LogError::BadEntry { index });
            }
            let stage = match e[0] {
                1 => Stage::Rom,
                2 => Stage::Bootloader,
                _ => return Err(LogError::BadEntry { index }),
            };
            let component = match e[1] {
                1 => Component::Bootloader,
                2 => Component::Application,
                _ => return Err(LogError::BadEntry { index }),
            };
            let mut v = [0u8; 8];
            v.copy_from_slice(&e[4..12]);
            let mut digest = [0u8; 32];
            digest.copy_from_slice(&e[16..48]);
            let mut signer = [0u8; 32];
            signer.copy_from_slice(&e[48..80]);
            log.extend(Measurement {
                stage,
                component,
                version: ImageVersion::from_le_bytes(v),
                security_counter: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
                digest,
                signer,
            })?;
        }
        if log.pcr != pcr {
            return Err(LogError::PcrMismatch);
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(stage: Stage, d: u8) -> Measurement {
        Measurement {
            stage,
            component: match stage {
                Stage::Rom => Component::Bootloader,
                Stage::Bootloader => Component::Application,
            },
            version: ImageVersion::new(1, 2, 3, 4),
            security_counter: 7,
            digest: [d; 32],
            signer: [0x5a; 32],
        }
    }

    #[test]
    fn pcr_is_the_sha256_extend_chain() {
        let mut log = MeasurementLog::new();
        log.extend(m(Stage::Rom, 1)).unwrap();
        log.extend(m(Stage::Bootloader, 2)).unwrap();
        let step1: [u8; 32] = Sha256::digest([[0u8; 32], [1u8; 32]].concat()).into();
        let step2: [u8; 32] = Sha256::digest([step1, [2u8; 32]].concat()).into();
        assert_eq!(log.pcr(), step2);
        assert_eq!(MeasurementLog::replay(log.entries()), step2);
    }

    #[test]
    fn encode_decode_round_trip_and_tamper_detection() {
        let mut log = MeasurementLog::new();
        log.extend(m(Stage::Rom, 1)).unwrap();
        log.extend(m(Stage::Bootloader, 2)).unwrap();
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let n = log.encode(&mut buf).unwrap();
        assert_eq!(MeasurementLog::decode(&buf[..n]).unwrap(), log);
        let mut bad = buf;
        bad[HEADER_LEN + 16] ^= 1; // a digest byte
        assert_eq!(
            MeasurementLog::decode(&bad[..n]),
            Err(LogError::PcrMismatch)
        );
        assert_eq!(
            MeasurementLog::decode(&buf[..n - 1]),
            Err(LogError::BadLength { len: n - 1 })
        );
        assert_eq!(MeasurementLog::decode(b"nope"), Err(LogError::NotALog));
        assert_eq!(
            log.encode(&mut [0u8; 10]),
            Err(LogError::BufferTooSmall { needed: n })
        );
    }

    #[test]
    fn log_is_bounded() {
        let mut log = MeasurementLog::new();
        for i in 0..MAX_MEASUREMENTS {
            log.extend(m(Stage::Rom, i as u8)).unwrap();
        }
        assert_eq!(log.extend(m(Stage::Rom, 9)), Err(LogError::Full));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics_and_accepts_only_consistent_logs(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(log) = MeasurementLog::decode(&bytes) {
                proptest::prop_assert_eq!(MeasurementLog::replay(log.entries()), log.pcr());
                let mut out = [0u8; MAX_ENCODED_LEN];
                let n = log.encode(&mut out).unwrap();
                proptest::prop_assert_eq!(&out[..n], &bytes[..]);
            }
        }
    }
}
