//! Password rules: `password=value` assignments, default credential pairs, crypt(3) hashes.
//!
//! False positives are kept down by what counts as a value: it must end where a string or
//! field ends (NUL, quote, newline, `&`, `;`, `,`, `}`), not at a space (prose such as
//! "password: must be at least…"), and must not be a placeholder (`%s`, `$VAR`, `<pass>`,
//! `PASSWORD`, `****`).

use crate::finding::{FindingKind, Severity};
use crate::text::{Hit, redacted};
use crate::text_rules::{DEFAULT_PAIRS, word_end, word_start};

/// Longest value taken as a hardcoded password.
const MAX_VALUE: usize = 64;

fn terminates(b: Option<&u8>) -> bool {
    match b {
        None => true,
        Some(&b) => {
            matches!(
                b,
                0 | b'"' | b'\'' | b'\n' | b'\r' | b'&' | b';' | b',' | b'}'
            ) || !(b.is_ascii_graphic() || b == b' ')
        }
    }
}

const PLACEHOLDERS: &[&str] = &[
    "none",
    "null",
    "nil",
    "true",
    "false",
    "string",
    "required",
    "optional",
    "empty",
    "hidden",
    "secret",
    "example",
    "your_password",
    "yourpassword",
    "<password>",
    "undefined",
];

fn placeholder(v: &[u8]) -> bool {
    let first = v[0];
    matches!(
        first,
        b'%' | b'$' | b'{' | b'<' | b'*' | b'?' | b'(' | b'[' | b'@' | b'\\'
    ) || v
        .windows(2)
        .any(|w| w[0] == b'%' && w[1].is_ascii_alphabetic())
        || v.iter()
            .all(|b| b.is_ascii_uppercase() || *b == b'_' || *b == b'-')
        || v.iter().all(|&b| b == first)
        || PLACEHOLDERS
            .iter()
            .any(|p| p.as_bytes().eq_ignore_ascii_case(v))
}

/// `password=value`, `passwd: value`, `"password":"value"` and the like.
pub(crate) fn password(data: &[u8], start: usize, end: usize) -> Option<Hit> {
    // The keyword may be followed by more of a word (`password_hash`) only if it stays an
    // identifier; `pass` must stand alone (`bypass=` is no password).
    let mut at = end;
    while data
        .get(at)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        at += 1;
        if at - start > 24 {
            return None;
        }
    }
    let word = &data[start..at];
    if end - start == 4 && (!word_start(data, start) || at != end) {
        return None;
    }
    if word.ends_with(b"hash") || word.ends_with(b"_len") || word.ends_with(b"_file") {
        return None;
    }
    if data.get(at).is_some_and(|&b| b == b'"' || b == b'\'') {
        at += 1;
    }
    while data.get(at) == Some(&b' ') {
        at += 1;
    }
    let sep = *data.get(at)?;
    // `password::` is a path (`text::password::check`), not an assignment.
    if !matches!(sep, b'=' | b':') || data.get(at + 1) == Some(&b':') {
        return None;
    }
    at += 1;
    let spaced = data.get(at) == Some(&b' ');
    while data.get(at) == Some(&b' ') {
        at += 1;
    }
    let quoted = data.get(at).is_some_and(|&b| b == b'"' || b == b'\'');
    if quoted {
        at += 1;
    }
    // `Password: ` followed by an unquoted word is a prompt or prose, and in a binary whose
    // strings are packed without NULs (Rust) the next string follows directly. YAML's
    // `password: value` is missed by this rule; quoted JSON is not.
    if sep == b':' && spaced && !quoted {
        return None;
    }
    let v0 = at;
    while at < data.len() && !terminates(data.get(at)) && data[at] != b' ' && at - v0 <= MAX_VALUE {
        at += 1;
    }
    let value = &data[v0..at];
    if value.len() < 4 || value.len() > MAX_VALUE || !terminates(data.get(at)) {
        return None;
    }
    if placeholder(value) {
        return None;
    }
    Some(Hit {
        kind: FindingKind::HardcodedPassword,
        severity: Severity::High,
        offset: start,
        len: at - start,
        detail: format!(
            "password assigned after \"{}\": {}",
            String::from_utf8_lossy(word),
            redacted(b"", value)
        ),
        paired: None,
    })
}

/// A known default pair: `user:pass`, `user/pass`, or `user` and `pass` as neighbouring C
/// strings (`"root\0\0\0\0toor\0"`, as in a credentials table).
pub(crate) fn default_pair(data: &[u8], start: usize, end: usize) -> Option<Hit> {
    let pass = &data[start..end];
    if !word_end(data, end) || start == 0 {
        return None;
    }
    let sep = data[start - 1];
    // Where the user name must end: right before a ':' or '/', or before a run of NULs.
    let user_end = match sep {
        b':' | b'/' => start - 1,
        0 => {
            let mut i = start - 1;
            while i > 0 && data[i - 1] == 0 && start - i < 16 {
                i -= 1;
            }
            if data[end..].first().is_some_and(|&b| b != 0) {
                return None;
            }
            i
        }
        _ => return None,
    };
    let (user, _) = DEFAULT_PAIRS.iter().find(|(u, p)| {
        p.as_bytes() == pass
            && user_end >= u.len()
            && &data[user_end - u.len()..user_end] == u.as_bytes()
            && (word_start(data, user_end - u.len()))
    })?;
    let offset = user_end - user.len();
    Some(Hit {
        kind: FindingKind::DefaultCredential,
        severity: Severity::High,
        offset,
        len: end - offset,
        detail: format!(
            "default credential pair for user \"{user}\" (password of {} chars from the \
             default list)",
            pass.len()
        ),
        paired: None,
    })
}

fn crypt_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

/// A crypt(3) hash: `$id$salt$hash` (MD5-crypt, SHA-256/512-crypt) or bcrypt `$2b$NN$…`.
pub(crate) fn crypt_hash(data: &[u8], start: usize, end: usize) -> Option<Hit> {
    let rest = &data[end..];
    let bcrypt = data[start + 1] == b'2';
    let total = if bcrypt {
        // `$2b$` cost (2 digits) `$` 53 characters of salt + hash.
        let ok = rest.len() >= 56
            && rest[..2].iter().all(u8::is_ascii_digit)
            && rest[2] == b'$'
            && rest[3..56].iter().all(|&b| crypt_char(b));
        if !ok {
            return None;
        }
        56
    } else {
        let salt = rest.iter().take(17).take_while(|&&b| crypt_char(b)).count();
        if salt == 0 || salt > 16 || rest.get(salt) != Some(&b'$') {
            return None;
        }
        let hash = rest[salt + 1..]
            .iter()
            .take(87)
            .take_while(|&&b| crypt_char(b))
            .count();
        if !(22..=86).contains(&hash) {
            return None;
        }
        salt + 1 + hash
    };
    let id = String::from_utf8_lossy(&data[start..end]).into_owned();
    Some(Hit {
        kind: FindingKind::PasswordHash,
        severity: Severity::High,
        offset: start,
        len: end - start + total,
        detail: format!(
            "crypt(3) password hash {}: the same password on every device, open to offline \
             guessing",
            redacted(id.as_bytes(), &rest[..total])
        ),
        paired: None,
    })
}
