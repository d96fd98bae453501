//! UTC timestamps with nanosecond precision and their RFC 3339 text form.
//!
//! Kept dependency-free: the log needs only "seconds + nanoseconds since the Unix epoch, UTC"
//! and one unambiguous text form (`2024-05-01T12:00:00.123456789Z`).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Earliest representable instant: 0000-01-01T00:00:00Z.
const MIN_SECS: i64 = -62_167_219_200;
/// Latest representable second: 9999-12-31T23:59:59Z.
const MAX_SECS: i64 = 253_402_300_799;

/// An instant in UTC: seconds since 1970-01-01T00:00:00Z (leap seconds not counted, as in
/// POSIX time) plus nanoseconds. Years 0000 to 9999 only, so the text form is always 4 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// Why a timestamp was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Nanoseconds must be below one second.
    #[error("nanoseconds {0} are not below 1,000,000,000")]
    Nanos(u32),
    /// The instant is before year 0 or after year 9999.
    #[error("timestamp {0} s is outside years 0000..=9999")]
    OutOfRange(i64),
    /// The text is not an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
    #[error("not an RFC 3339 timestamp (expected e.g. 2024-05-01T12:00:00Z)")]
    Syntax,
}

impl Timestamp {
    /// Builds a timestamp, checking the nanosecond and year ranges.
    pub fn new(secs: i64, nanos: u32) -> Result<Self, TimeError> {
        if nanos >= 1_000_000_000 {
            return Err(TimeError::Nanos(nanos));
        }
        if !(MIN_SECS..=MAX_SECS).contains(&secs) {
            return Err(TimeError::OutOfRange(secs));
        }
        Ok(Self { secs, nanos })
    }

    /// The current time from the system clock.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            secs: (d.as_secs() as i64).min(MAX_SECS),
            nanos: d.subsec_nanos(),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn secs(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second.
    pub fn nanos(&self) -> u32 {
        self.nanos
    }

    /// Parses RFC 3339 (`T` or space separator, `Z`/`z` or a numeric offset, 0 to 9 fraction
    /// digits). A date alone (`2024-05-01`) means midnight UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeError> {
        let b = text.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimeError> {
            let digits = b.get(range).ok_or(TimeError::Syntax)?;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(TimeError::Syntax);
            }
            Ok(digits
                .iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
        };
        let expect = |at: usize, c: u8| {
            if b.get(at) == Some(&c) {
                Ok(())
            } else {
                Err(TimeError::Syntax)
            }
        };
        let year = num(0..4)?;
        expect(4, b'-')?;
        let month = num(5..7)?;
        expect(7, b'-')?;
        let day = num(8..10)?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(TimeError::Syntax);
        }
        let days = days_from_civil(year, month, day);
        if b.len() == 10 {
            return Self::new(days * 86_400, 0);
        }
        if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
            return Err(TimeError::Syntax);
        }
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        expect(13, b':')?;
        expect(16, b':')?;
        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimeError::Syntax);
        }
        let mut pos = 19;
        let mut nanos = 0u32;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
            let digits = pos - start;
            if digits == 0 || digits > 9 {
                return Err(TimeError::Syntax);
            }
            nanos = (num(start..pos)? * 10i64.pow(9 - digits as u32)) as u32;
        }
        let offset = match b.get(pos) {
            Some(b'Z' | b'z') if b.len() == pos + 1 => 0,
            Some(sign @ (b'+' | b'-')) if b.len() == pos + 6 => {
                expect(pos + 3, b':')?;
                let (oh, om) = (num(pos + 1..pos + 3)?, num(pos + 4..pos + 6)?);
                if oh > 23 || om > 59 {
                    return Err(TimeError::Syntax);
                }
                let o = oh * 3600 + om * 60;
                if *sign == b'+' { o } else { -o }
            }
            _ => return Err(TimeError::Syntax),
        };
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
        Self::new(secs, nanos)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with all nine fraction digits: `2024-05-01T12:00:00.000000000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            self.nanos
        )
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(
            Timestamp::new(0, 0).unwrap().to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            Timestamp::new(951_782_400, 5).unwrap().to_string(),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            Timestamp::new(MIN_SECS, 0).unwrap().to_string(),
            "0000-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            Timestamp::new(MAX_SECS, 999_999_999).unwrap().to_string(),
            "9999-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn parses_offsets_fractions_and_dates() {
        let t = Timestamp::parse_rfc3339("2024-05-01T14:30:00.5+02:30").unwrap();
        assert_eq!(t.to_string(), "2024-05-01T12:00:00.500000000Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2024-05-01").unwrap(),
            Timestamp::parse_rfc3339("2024-05-01T00:00:00Z").unwrap()
        );
        for bad in [
            "2024-02-30T00:00:00Z",
            "2023-02-29",
            "2024-05-01T24:00:00Z",
            "2024-05-01T00:00:00",
            "2024-05-01T00:00:00.Z",
            "2024-05-01T00:00:00.1234567890Z",
            "2024-05-01T00:00:00+0200",
            "24-05-01",
            "",
            "2024-05-01T00:00:00Zjunk",
        ] {
            assert_eq!(
                Timestamp::parse_rfc3339(bad),
                Err(TimeError::Syntax),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_out_of_range() {
        assert_eq!(
            Timestamp::new(0, 1_000_000_000),
            Err(TimeError::Nanos(1_000_000_000))
        );
        assert_eq!(
            Timestamp::new(MAX_SECS + 1, 0),
            Err(TimeError::OutOfRange(MAX_SECS + 1))
        );
    }

    #[test]
    fn agrees_with_gnu_date() {
        // An independent oracle: coreutils `date` formats a handful of instants.
        let secs = [
            0i64,
            68_169_600,
            951_868_799,
            1_700_000_000,
            4_102_444_800,
            -1_000_000_000,
        ];
        for s in secs {
            let out = std::process::Command::new("date")
                .args([
                    "-u",
                    "-d",
                    &format!("@{s}"),
                    "+%Y-%m-%dT%H:%M:%S.000000000Z",
                ])
                .output()
                .expect("coreutils date is installed");
            let expected = String::from_utf8(out.stdout).unwrap();
            assert_eq!(Timestamp::new(s, 0).unwrap().to_string(), expected.trim());
        }
    }

    proptest! {
        #[test]
        fn text_round_trips(secs in MIN_SECS..=MAX_SECS, nanos in 0u32..1_000_000_000) {
            let t = Timestamp::new(secs, nanos).unwrap();
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
        }

        #[test]
        fn parser_never_panics(text in ".{0,40}") {
            let _ = Timestamp::parse_rfc3339(&text);
        }
    }
}
