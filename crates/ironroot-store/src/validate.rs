//! Syntax checks for identifiers stored in the registry.
//!
//! All queries are parameterised, so these checks are not what stops SQL injection; they stop
//! values that would be dangerous *elsewhere*: device ids end up in certificate subjects, MQTT
//! client ids and topic names, and attribute values are substituted into policy resources. A
//! `+`, `#`, `*`, `?`, `/` or `$` there could widen a policy or a subscription.
//!
//! The device id rule mirrors the one in `ironroot-pki` (allowed set `[A-Za-z0-9._:-]`,
//! 1..=128 bytes); it is duplicated here as a defensive check until the two share a `DeviceId`
//! type.

use crate::error::StoreError;

/// Longest device id, group name or attribute key, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest attribute value or owner, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;
/// Longest certificate serial in hex digits (RFC 5280: at most 20 octets).
pub const MAX_SERIAL_HEX: usize = 40;

fn invalid(what: &'static str, value: &str, reason: &'static str) -> StoreError {
    StoreError::InvalidInput {
        what,
        value: value.chars().take(MAX_ID_LEN + 8).collect(),
        reason,
    }
}

/// Checks an identifier: 1..=128 bytes of `[A-Za-z0-9._:-]`.
fn identifier(what: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(invalid(what, value, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(invalid(what, value, "longer than 128 bytes"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(invalid(
            what,
            value,
            "only letters, digits and . _ : - are allowed",
        ));
    }
    Ok(())
}

/// Checks a device id: 1..=128 bytes of `[A-Za-z0-9._:-]` (no `/ + # $ * ?`, NUL, controls).
pub fn device_id(id: &str) -> Result<(), StoreError> {
    identifier("device id", id)
}

/// Checks a group name (same rule as a device id: it appears in policy variables).
pub fn group_name(name: &str) -> Result<(), StoreError> {
    identifier("group name", name)
}

/// Checks an attribute key (same rule as a device id).
pub fn attribute_key(key: &str) -> Result<(), StoreError> {
    identifier("attribute key", key)
}

/// Checks free text that policies may substitute (attribute values, owners): at most 1024
/// bytes, no control characters and none of `/ + # * ? $` (topic levels and wildcards).
fn free_text(what: &'static str, value: &str, allow_empty: bool) -> Result<(), StoreError> {
    if value.is_empty() && !allow_empty {
        return Err(invalid(what, value, "must not be empty"));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(invalid(what, value, "longer than 1024 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(what, value, "control characters are not allowed"));
    }
    if value.contains(['/', '+', '#', '*', '?', '$']) {
        return Err(invalid(
            what,
            value,
            "the characters / + # * ? $ are not allowed (topic levels and wildcards)",
        ));
    }
    Ok(())
}

/// Checks an attribute value (may be empty).
pub fn attribute_value(value: &str) -> Result<(), StoreError> {
    free_text("attribute value", value, true)
}

/// Checks an owner name.
pub fn owner(owner: &str) -> Result<(), StoreError> {
    free_text("owner", owner, false)
}

/// Checks a free-form certificate field (subject, issuer id): non-empty, bounded, no controls.
pub(crate) fn certificate_text(what: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(invalid(what, value, "must not be empty"));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(invalid(what, value, "longer than 1024 bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(what, value, "control characters are not allowed"));
    }
    Ok(())
}

/// Normalises a certificate serial to the registry's canonical form: lowercase hex of the
/// unsigned value without leading zeros (`"0"` for zero).
///
/// Accepts upper or lower case, an optional `0x` prefix and `:` separators, so the output of
/// `openssl x509 -serial` (`serial=0A1B...`) and of `openssl x509 -text` (`0a:1b:...`) both work.
pub fn normalize_serial(serial: &str) -> Result<String, StoreError> {
    let trimmed = serial.strip_prefix("0x").unwrap_or(serial);
    let digits: String = trimmed.chars().filter(|&c| c != ':').collect();
    if digits.is_empty() {
        return Err(invalid("serial", serial, "must not be empty"));
    }
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("serial", serial, "must be hexadecimal"));
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_SERIAL_HEX {
        return Err(invalid("serial", serial, "longer than 20 octets"));
    }
    if significant.is_empty() {
        return Ok("0".to_owned());
    }
    Ok(significant.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn device_ids_follow_the_strict_syntax() {
        for ok in ["a", "dev-001", "sensor.eu:42_x", &"x".repeat(128)] {
            device_id(ok).unwrap();
        }
        for bad in [
            "",
            "a/b",
            "a+b",
            "a#b",
            "a$b",
            "a*b",
            "a?b",
            "a b",
            "a\0b",
            "a\nb",
            "é",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(
                    device_id(bad),
                    Err(StoreError::InvalidInput {
                        what: "device id",
                        ..
                    })
                ),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn attribute_values_reject_topic_wildcards() {
        attribute_value("").unwrap();
        attribute_value("eu-west 1, rack 7").unwrap();
        for bad in ["a/b", "+", "#", "*", "?", "${iot:ClientId}", "a\u{7}"] {
            assert!(attribute_value(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(owner("").is_err());
    }

    #[test]
    fn serials_normalise_from_openssl_forms() {
        assert_eq!(normalize_serial("0A1B").unwrap(), "a1b");
        assert_eq!(normalize_serial("0a:1b").unwrap(), "a1b");
        assert_eq!(normalize_serial("0x00FF").unwrap(), "ff");
        assert_eq!(normalize_serial("0000").unwrap(), "0");
        assert!(normalize_serial("").is_err());
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial(&"f".repeat(41)).is_err());
        assert_eq!(
            normalize_serial(&format!("00{}", "f".repeat(40)))
                .unwrap()
                .len(),
            40
        );
    }

    proptest! {
        #[test]
        fn accepted_device_ids_contain_only_the_allowed_set(id in "\\PC{0,140}") {
            if device_id(&id).is_ok() {
                prop_assert!(!id.is_empty() && id.len() <= 128);
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)));
            }
        }

        #[test]
        fn serial_normalisation_is_idempotent_and_case_insensitive(s in "[0-9a-fA-F:]{1,44}") {
            if let Ok(n) = normalize_serial(&s) {
                prop_assert_eq!(normalize_serial(&n).unwrap(), n.clone());
                prop_assert_eq!(normalize_serial(&s.to_ascii_uppercase()).unwrap(), n);
            }
        }
    }
}
