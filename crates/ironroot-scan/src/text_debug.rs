//! Debug strings and build paths: signals of a debug build or a leaky build machine.

use crate::finding::{FindingKind, Severity};
use crate::text::Hit;
use crate::text_rules::{Rule, word_end, word_start};

/// The printable string around `at`, at most 256 bytes each way (a C string in the image).
fn string_around(data: &[u8], at: usize) -> &[u8] {
    let printable = |b: &u8| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let lo = data[..at]
        .iter()
        .rev()
        .take(256)
        .take_while(|b| printable(b))
        .count();
    let hi = data[at..]
        .iter()
        .take(256)
        .take_while(|b| printable(b))
        .count();
    &data[at - lo..at + hi]
}

fn has_format_spec(s: &[u8]) -> bool {
    s.windows(2).any(|w| {
        w[0] == b'%'
            && matches!(
                w[1],
                b's' | b'd' | b'x' | b'u' | b'l' | b'p' | b'c' | b'0'..=b'9'
            )
    })
}

/// `debug` as a word: a printf-style debug format string, or an upper-case `DEBUG` marker.
pub(crate) fn debug(data: &[u8], start: usize, end: usize) -> Option<Hit> {
    if !word_start(data, start) || !word_end(data, end) {
        return None;
    }
    let s = string_around(data, start);
    let detail = if has_format_spec(s) {
        "debug printf format string"
    } else if &data[start..end] == b"DEBUG" {
        "DEBUG marker"
    } else {
        return None;
    };
    Some(Hit {
        kind: FindingKind::DebugString,
        severity: Severity::Low,
        offset: start,
        len: end - start,
        detail: detail.into(),
        paired: None,
    })
}

/// `/home/<user>/`, `/Users/<user>/`, `C:\Users\<user>\`: the path is shown (it names the
/// build machine's user, which is the point) cut to 96 characters.
pub(crate) fn build_path(data: &[u8], rule: Rule, start: usize, end: usize) -> Option<Hit> {
    let sep = if rule == Rule::BuildPathWindows {
        data[end - 1]
    } else {
        b'/'
    };
    let user = data[end..]
        .iter()
        .take(33)
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    let first = *data.get(end)?;
    if user == 0
        || user > 32
        || data.get(end + user) != Some(&sep)
        || !(first.is_ascii_alphabetic() || first == b'_')
    {
        return None;
    }
    if rule == Rule::BuildPathUnix && start > 0 && data[start - 1].is_ascii_alphanumeric() {
        return None;
    }
    let path_len = data[start..]
        .iter()
        .take(512)
        .take_while(|&&b| b.is_ascii_graphic())
        .count();
    let shown = &data[start..start + path_len.min(96)];
    Some(Hit {
        kind: FindingKind::BuildPath,
        severity: Severity::Low,
        offset: start,
        len: path_len,
        detail: format!(
            "build machine path \"{}{}\"",
            String::from_utf8_lossy(shown),
            if path_len > 96 { "…" } else { "" }
        ),
        paired: None,
    })
}
