//! Canonical JSON exactly as securesystemslib's `encode_canonical` writes it (what TUF
//! signatures are over): object keys sorted by code point, no whitespace, strings with only
//! `\` and `"` escaped (every other character, control characters included, as raw UTF-8),
//! integers in decimal, no floats.

use alloc::vec::Vec;
use serde_json::Value;

use crate::TufError;

/// Encodes `value` canonically. Fails on floats, which canonical JSON cannot hold.
pub fn encode_canonical(value: &Value) -> Result<Vec<u8>, TufError> {
    let mut out = Vec::new();
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), TufError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(alloc::format!("{i}").as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(alloc::format!("{u}").as_bytes());
            } else {
                return Err(TufError::Canonical("floats are not allowed"));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's map (without `preserve_order`) is a BTreeMap<String, _>: sorted by
            // bytes, and UTF-8 byte order is code point order, which is Python's str order.
            let mut entries: Vec<(&alloc::string::String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'\\' || b == b'"' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> alloc::string::String {
        let v: Value = serde_json::from_str(s).unwrap();
        alloc::string::String::from_utf8(encode_canonical(&v).unwrap()).unwrap()
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        assert_eq!(
            canon(r#"{ "b": [1, -2, {"z": null, "a": true}], "a": "x" }"#),
            r#"{"a":"x","b":[1,-2,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        assert_eq!(canon(r#""a\"b\\c\n\u00e9""#), "\"a\\\"b\\\\c\n\u{e9}\"");
    }

    #[test]
    fn refuses_floats() {
        let v: Value = serde_json::from_str("[1.5]").unwrap();
        assert_eq!(
            encode_canonical(&v),
            Err(TufError::Canonical("floats are not allowed"))
        );
    }
}
