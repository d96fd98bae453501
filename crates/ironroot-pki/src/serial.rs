//! Certificate serial numbers and fingerprints.

use std::fmt;

/// A certificate serial number: a positive integer, held as its big-endian magnitude with
/// leading zero bytes stripped (so the same number always compares and hashes equal, whatever
/// DER padding a parser hands us). This is ironroot's only serial type: the CA, the registry,
/// the identity service, the broker and the HTTP API all use it.
///
/// # Canonical text form
///
/// `Display` prints the one canonical text form: **lowercase hex without separators and
/// without leading zeros** (`0x0A1B` → `a1b`). The registry stores and indexes serials in this
/// form (databases written before this type existed hold the same text, so they stay valid).
/// [`Serial::from_hex`] accepts every spelling an operator is likely to paste — openssl's
/// `serial=0A1B`, `0x0a1b`, `0A:1B`, any case, leading zeros — and they all give the same
/// value and the same canonical text.
///
/// Serials ironroot issues are 128 random bits from the operating system's CSPRNG (via
/// aws-lc). At that size a collision is not a practical concern; the registry still holds a
/// UNIQUE constraint on the column as the final guard.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Box<[u8]>);

impl Serial {
    /// Number of random bytes in a freshly generated serial.
    pub const RANDOM_BYTES: usize = 16;

    /// A fresh random positive 128-bit serial.
    pub fn random() -> Result<Self, SerialError> {
        loop {
            let mut bytes = [0u8; Self::RANDOM_BYTES];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SerialError::Rng)?;
            // Zero is not a positive integer; draw again (probability 2^-128).
            if let Ok(serial) = Self::from_be_bytes(&bytes) {
                return Ok(serial);
            }
        }
    }

    /// A serial from big-endian bytes (for example the DER INTEGER content of a parsed
    /// certificate). Leading zero bytes are stripped; zero and values over 20 bytes (RFC 5280's
    /// limit) are rejected.
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, SerialError> {
        let first = bytes
            .iter()
            .position(|&b| b != 0)
            .ok_or(SerialError::Zero)?;
        let magnitude = &bytes[first..];
        if magnitude.len() > 20 {
            return Err(SerialError::TooLong {
                len: magnitude.len(),
            });
        }
        Ok(Self(magnitude.into()))
    }

    /// Parses hex as printed by `openssl x509 -serial` (`serial=0A1B`), `openssl x509 -text`
    /// (`0a:1b`) or [`Serial`]'s `Display` (`a1b`): upper or lower case, optional `serial=` or
    /// `0x` prefix, optional `:` separators, any number of leading zeros.
    pub fn from_hex(s: &str) -> Result<Self, SerialError> {
        let s = s.trim();
        let s = s.strip_prefix("serial=").unwrap_or(s);
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        let digits: Vec<u8> = s.bytes().filter(|&b| b != b':').collect();
        // Leading zeros carry no value; dropping them first keeps "000…0a" (any padding) valid
        // while the length bound below still refuses more than 20 significant bytes.
        let first = digits.iter().position(|&b| b != b'0');
        let digits = match first {
            Some(i) => &digits[i..],
            None if digits.is_empty() => return Err(SerialError::BadHex),
            None => return Err(SerialError::Zero),
        };
        if digits.len() > 40 {
            return Err(SerialError::TooLong {
                len: digits.len().div_ceil(2),
            });
        }
        let mut padded = Vec::with_capacity(digits.len() + 1);
        if digits.len() % 2 == 1 {
            padded.push(b'0');
        }
        padded.extend_from_slice(digits);
        let bytes = padded
            .chunks(2)
            .map(|pair| {
                let hi = (pair[0] as char).to_digit(16)?;
                let lo = (pair[1] as char).to_digit(16)?;
                Some((hi * 16 + lo) as u8)
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(SerialError::BadHex)?;
        Self::from_be_bytes(&bytes)
    }

    /// The big-endian magnitude (no leading zero bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The serial as rcgen wants it.
    pub(crate) fn to_rcgen(&self) -> rcgen::SerialNumber {
        rcgen::SerialNumber::from_slice(&self.0)
    }
}

/// The canonical text form: lowercase hex, no separators, no leading zeros (`a1b`, never
/// `0a1b`); [`Serial::from_hex`] reads it back.
impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The magnitude has no leading zero byte, so only the first byte can have a zero nibble.
        let (first, rest) = self.0.split_first().expect("a serial is never empty");
        write!(f, "{first:x}")?;
        for b in rest {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Serial {
    type Err = SerialError;

    /// Same as [`Serial::from_hex`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

/// Why a serial number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerialError {
    /// The value is zero (serials must be positive).
    #[error("serial number is zero; serials must be positive")]
    Zero,
    /// More than 20 significant bytes (RFC 5280 §4.1.2.2).
    #[error("serial number has {len} significant bytes; RFC 5280 allows at most 20")]
    TooLong {
        /// Significant bytes in the rejected value.
        len: usize,
    },
    /// The text is not a hex number.
    #[error("serial number is not hex (expected e.g. 3F:A0:11 or 3fa011)")]
    BadHex,
    /// The system random number generator failed.
    #[error("system random number generator failed while drawing a serial number")]
    Rng,
}

/// SHA-256 fingerprint of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Computes the fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Lowercase hex, 64 characters (compare with `openssl x509 -fingerprint -sha256`, which
/// prints the same bytes in upper case with colons).
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn random_serials_are_positive_distinct_and_at_most_16_bytes() {
        let a = Serial::random().unwrap();
        let b = Serial::random().unwrap();
        assert_ne!(a, b);
        assert!(a.as_bytes().len() <= 16 && a.as_bytes()[0] != 0);
    }

    #[test]
    fn leading_zeros_do_not_change_identity() {
        let a = Serial::from_be_bytes(&[0, 0, 0x80, 1]).unwrap();
        let b = Serial::from_be_bytes(&[0x80, 1]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "8001");
        let c = Serial::from_be_bytes(&[0, 0x0a, 0x1b]).unwrap();
        assert_eq!(
            c.to_string(),
            "a1b",
            "canonical text has no leading zero nibble"
        );
    }

    #[test]
    fn hex_forms_from_openssl_parse() {
        let s = Serial::from_hex("0x7F:A0:01").unwrap();
        assert_eq!(s, Serial::from_hex("7fa001").unwrap());
        assert_eq!(Serial::from_hex("f").unwrap().as_bytes(), &[0x0f]);
        assert_eq!(Serial::from_hex("serial=0A1B").unwrap().to_string(), "a1b");
        assert_eq!(Serial::from_hex("00"), Err(SerialError::Zero));
        assert_eq!(Serial::from_hex("xyz"), Err(SerialError::BadHex));
        assert_eq!(Serial::from_hex(""), Err(SerialError::BadHex));
        assert_eq!(Serial::from_hex("0x"), Err(SerialError::BadHex));
        assert_eq!(Serial::from_hex("serial="), Err(SerialError::BadHex));
        assert_eq!(Serial::from_hex("a:b:x"), Err(SerialError::BadHex));
        // 20 significant bytes behind any amount of zero padding are fine; 21 are not.
        let max = format!("0000{}", "f".repeat(40));
        assert_eq!(Serial::from_hex(&max).unwrap().as_bytes().len(), 20);
        assert!(matches!(
            Serial::from_hex(&"f".repeat(41)),
            Err(SerialError::TooLong { len: 21 })
        ));
        assert!(matches!(
            Serial::from_be_bytes(&[1; 21]),
            Err(SerialError::TooLong { len: 21 })
        ));
    }

    /// Every spelling an operator or a tool may use for the serial whose significant hex
    /// digits are `canonical` (lowercase, no leading zero).
    fn spellings(canonical: &str, zeros: usize, upper: bool, colons: bool) -> Vec<String> {
        let mut digits = format!("{}{canonical}", "0".repeat(zeros));
        if upper {
            digits = digits.to_ascii_uppercase();
        }
        let mut even = digits.clone();
        if even.len() % 2 == 1 {
            even.insert(0, '0');
        }
        let colon_form = even
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let main = if colons { colon_form.clone() } else { digits };
        vec![
            main.clone(),
            format!("serial={}", even.to_ascii_uppercase()),
            format!("0x{main}"),
            format!("0X{main}"),
            colon_form,
            format!("  {main}\n"),
        ]
    }

    proptest! {
        #[test]
        fn display_round_trips(bytes in proptest::collection::vec(any::<u8>(), 1..=20)) {
            if let Ok(s) = Serial::from_be_bytes(&bytes) {
                prop_assert_eq!(Serial::from_hex(&s.to_string()).unwrap(), s);
            }
        }

        /// openssl `serial=0A1B`, `0x`, colons, leading zeros and any case all give the same
        /// `Serial` and the same canonical text (lowercase, no leading zeros).
        #[test]
        fn every_accepted_spelling_gives_one_serial_and_one_text(
            bytes in proptest::collection::vec(any::<u8>(), 1..=20),
            zeros in 0usize..6,
            upper: bool,
            colons: bool,
        ) {
            let Ok(serial) = Serial::from_be_bytes(&bytes) else { return Ok(()) };
            let canonical = serial.to_string();
            prop_assert!(!canonical.starts_with('0'));
            prop_assert_eq!(&canonical, &canonical.to_ascii_lowercase());
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(canonical.as_str(), hex.trim_start_matches('0'));
            for spelling in spellings(&canonical, zeros, upper, colons) {
                let parsed = Serial::from_hex(&spelling);
                prop_assert_eq!(parsed.as_ref(), Ok(&serial), "{:?}", spelling);
                prop_assert_eq!(parsed.unwrap().to_string(), canonical.clone());
            }
        }
    }
}
