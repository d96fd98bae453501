//! Device identifiers: the strict syntax every certificate subject, MQTT client id and policy
//! variable relies on.
//!
//! The allowed set is defined positively: 1 to [`DeviceId::MAX_LEN`] bytes of
//! `[A-Za-z0-9._:-]`, starting with an ASCII letter or digit. Everything else is rejected,
//! which excludes by construction the characters that are dangerous somewhere downstream:
//! MQTT wildcards and separators (`+`, `#`, `/`), policy wildcards (`*`, `?`), policy variables
//! (`$`), NUL and other control characters, whitespace, quotes, and all non-ASCII text (no
//! Unicode look-alikes).

use std::fmt;

/// A validated device identifier.
///
/// Construct it with [`DeviceId::parse`]; holding a `DeviceId` proves the syntax check passed,
/// so downstream code (certificate subjects, topic names, SQL parameters) can use it verbatim.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    /// Maximum length of a device id in bytes (all allowed characters are one byte).
    pub const MAX_LEN: usize = 128;

    /// Validates `s` against the device id syntax.
    pub fn parse(s: &str) -> Result<Self, DeviceIdError> {
        validate(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SAN URI that carries this id in a device certificate: `urn:ironroot:device:<id>`.
    pub fn to_uri(&self) -> String {
        format!("{}{}", crate::identity::DEVICE_URI_PREFIX, self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({:?})", self.0)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = DeviceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a string is not a valid device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceIdError {
    /// The id is the empty string.
    #[error("device id is empty")]
    Empty,
    /// The id is longer than [`DeviceId::MAX_LEN`] bytes.
    #[error("device id is {len} bytes long; at most {max} are allowed", max = DeviceId::MAX_LEN)]
    TooLong {
        /// Length of the rejected id in bytes.
        len: usize,
    },
    /// The first character is not an ASCII letter or digit.
    #[error("device id must start with an ASCII letter or digit")]
    BadFirstCharacter,
    /// A character outside `[A-Za-z0-9._:-]`. Printable ASCII is echoed; anything else
    /// (control characters, NUL, non-ASCII) is shown by its code point only.
    #[error(
        "device id contains {} at byte {position}; allowed are A-Z a-z 0-9 and . _ : -",
        describe(*.character)
    )]
    ForbiddenCharacter {
        /// The rejected character.
        character: char,
        /// Its byte offset in the id.
        position: usize,
    },
}

fn describe(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("the character '{c}'")
    } else {
        format!("the character U+{:04X}", c as u32)
    }
}

/// Whether `b` is in the allowed set `[A-Za-z0-9._:-]`.
pub(crate) fn is_allowed_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

fn validate(s: &str) -> Result<(), DeviceIdError> {
    if s.is_empty() {
        return Err(DeviceIdError::Empty);
    }
    if s.len() > DeviceId::MAX_LEN {
        return Err(DeviceIdError::TooLong { len: s.len() });
    }
    for (position, character) in s.char_indices() {
        if !(character.is_ascii() && is_allowed_byte(character as u8)) {
            return Err(DeviceIdError::ForbiddenCharacter {
                character,
                position,
            });
        }
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(DeviceIdError::BadFirstCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_ids() {
        for id in [
            "sensor-0001",
            "A",
            "0",
            "plant.7:line_2-unit",
            &"x".repeat(128),
        ] {
            assert_eq!(DeviceId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_each_dangerous_character() {
        for bad in [
            '/', '+', '#', '$', '\0', '*', '?', ' ', '\n', '\t', '"', '\'', '\\', 'é', '\u{7f}',
        ] {
            let id = format!("dev{bad}x");
            assert!(
                matches!(
                    DeviceId::parse(&id),
                    Err(DeviceIdError::ForbiddenCharacter { character, position: 3 }) if character == bad
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn rejects_empty_long_and_bad_start() {
        assert_eq!(DeviceId::parse(""), Err(DeviceIdError::Empty));
        assert_eq!(
            DeviceId::parse(&"x".repeat(129)),
            Err(DeviceIdError::TooLong { len: 129 })
        );
        for bad in ["-rf", ".hidden", ":x", "_x"] {
            assert_eq!(
                DeviceId::parse(bad),
                Err(DeviceIdError::BadFirstCharacter),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_message_never_echoes_control_characters() {
        let msg = DeviceId::parse("a\u{1b}[31m").unwrap_err().to_string();
        assert!(msg.contains("U+001B"), "{msg}");
        assert!(!msg.contains('\u{1b}'));
    }

    #[test]
    fn uri_carries_the_id() {
        let id = DeviceId::parse("dev-1").unwrap();
        assert_eq!(id.to_uri(), "urn:ironroot:device:dev-1");
    }

    proptest! {
        /// The validator accepts exactly the positively defined language.
        #[test]
        fn accepts_iff_in_allowed_language(s in "\\PC{0,140}|[A-Za-z0-9._:/+#$*?-]{0,140}") {
            let expected = !s.is_empty()
                && s.len() <= DeviceId::MAX_LEN
                && s.bytes().all(is_allowed_byte)
                && s.as_bytes()[0].is_ascii_alphanumeric();
            prop_assert_eq!(DeviceId::parse(&s).is_ok(), expected);
        }

        /// Every accepted id is free of every character that is special in MQTT, policies,
        /// shells or X.509 string types.
        #[test]
        fn accepted_ids_are_safe(s in "[A-Za-z0-9][A-Za-z0-9._:-]{0,127}") {
            let id = DeviceId::parse(&s).unwrap();
            prop_assert!(!id.as_str().contains(['/', '+', '#', '$', '*', '?', '\0', ' ']));
            prop_assert!(id.as_str().len() <= 128);
        }

        /// Arbitrary bytes (decoded lossily) never panic the validator.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = DeviceId::parse(&s);
        }
    }
}
