//! Syntax checks for identifiers stored in the registry.
//!
//! All queries are parameterised, so these checks are not what stops SQL injection; they stop
//! values that would be dangerous *elsewhere*: device ids end up in certificate subjects, MQTT
//! client ids and topic names, and attribute values are substituted into policy resources. A
//! `+`, `#`, `*`, `?`, `/` or `$` there could widen a policy or a subscription.
//!
//! Device ids follow the one rule of [`ironroot_pki::DeviceId`] (1..=128 bytes of
//! `[A-Za-z0-9._:-]`, starting with a letter or digit); certificate serials are
//! [`ironroot_pki::Serial`] values, which carry their own canonical form.

use ironroot_pki::{DeviceId, DeviceIdError};

use crate::error::StoreError;

/// Longest device id, group name or attribute key, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest attribute value or owner, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;

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

/// Checks a device id with the one rule, [`DeviceId::parse`]: 1..=128 bytes of
/// `[A-Za-z0-9._:-]`, starting with an ASCII letter or digit (no `/ + # $ * ?`, NUL, controls).
pub fn device_id(id: &str) -> Result<(), StoreError> {
    DeviceId::parse(id).map(drop).map_err(|err| {
        let reason = match err {
            DeviceIdError::Empty => "must not be empty",
            DeviceIdError::TooLong { .. } => "longer than 128 bytes",
            DeviceIdError::BadFirstCharacter => "must start with an ASCII letter or digit",
            _ => "only letters, digits and . _ : - are allowed",
        };
        invalid("device id", id, reason)
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn device_ids_follow_the_strict_syntax() {
        for ok in ["a", "0", "dev-001", "sensor.eu:42_x", &"x".repeat(128)] {
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
            // The one rule (ironroot-pki's) also wants a letter or digit first.
            "-rf",
            ".hidden",
            "_x",
            ":x",
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

    proptest! {
        #[test]
        fn accepted_device_ids_contain_only_the_allowed_set(id in "\\PC{0,140}") {
            if device_id(&id).is_ok() {
                prop_assert!(!id.is_empty() && id.len() <= 128);
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)));
            }
            // The store and the CA agree on every input.
            prop_assert_eq!(device_id(&id).is_ok(), DeviceId::parse(&id).is_ok());
        }

    }
}
