//! Small helpers of the core: hex, digests, the `expires` time format, file-name quoting.

use alloc::string::String;
use alloc::vec::Vec;
use sha2::Digest as _;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of a hex string (either case); `None` if it is not hex of whole bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

/// Lowercase hex digest of `data` with a TUF hash algorithm name (`sha256`, `sha512`), or
/// `None` for an algorithm this client does not support.
pub fn digest_hex(algorithm: &str, data: &[u8]) -> Option<String> {
    match algorithm {
        "sha256" => Some(sha256_hex(data)),
        "sha512" => Some(hex(&sha2::Sha512::digest(data))),
        _ => None,
    }
}

/// Seconds since the Unix epoch of an `expires` value in TUF's format
/// `YYYY-MM-DDTHH:MM:SSZ` (exactly what python-tuf writes and reads).
pub fn parse_expires(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: core::ops::Range<usize>| -> Option<u64> {
        let mut n = 0u64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u64::from(c - b'0');
        }
        Some(n)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// The `expires` string of `secs` since the Unix epoch.
pub fn format_expires(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    alloc::format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

// Howard Hinnant's days-from-civil algorithms, for dates from 1970 on.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: u64) -> (u64, u64, u64) {
    let z = z + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A role or target name as one safe file name: every byte outside `[A-Za-z0-9._-]`
/// percent-encoded (as python-tuf's `quote(name, "")`), so `/` and `..` cannot leave a directory.
pub fn quote_file_name(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            s.push(char::from(b));
        } else {
            s.push_str(&alloc::format!("%{b:02X}"));
        }
    }
    if s == "." || s == ".." {
        s = s.replace('.', "%2E");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_round_trips_and_refuses_other_formats() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2030-02-28T23:59:59Z",
            "2024-02-29T12:00:00Z",
        ] {
            assert_eq!(format_expires(parse_expires(s).unwrap()), s);
        }
        assert_eq!(parse_expires("2030-01-01T00:00:00Z"), Some(1_893_456_000));
        for bad in [
            "2030-01-01T00:00:00",
            "2030-01-01 00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2030-13-01T00:00:00Z",
            "2030-01-01T00:00:00.5Z",
            "２030-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_expires(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(alloc::vec![0, 255, 16]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn quoted_names_stay_in_the_directory() {
        assert_eq!(quote_file_name("a/b c.json"), "a%2Fb%20c.json");
        assert_eq!(quote_file_name(".."), "%2E%2E");
    }
}
