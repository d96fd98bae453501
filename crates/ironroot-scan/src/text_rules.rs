//! The text rules: which anchors each rule has and what it checks around a match.
//!
//! Token shapes follow the issuers' published formats: AWS key ids are a four-letter type
//! prefix and 16 base32 characters, secret keys 40 base64 characters; GitHub tokens are
//! `gh?_` + 36 alphanumerics or `github_pat_` + 22 or more; Slack tokens `xox?-`; Google API
//! keys `AIza` + 35; JWTs three base64url parts whose first decodes to a JSON header.

use crate::finding::{FindingKind, Severity};
use crate::text::{Hit, entropy, redacted};

/// A text rule. The discriminant indexes per-rule counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    AwsKeyId,
    GitHub,
    Slack,
    SlackWebhook,
    GoogleApiKey,
    Jwt,
    Bearer,
    BasicAuth,
    Password,
    DefaultPair,
    EmptyRoot,
    CryptHash,
    Debug,
    Uart,
    Prompt,
    Jtag,
    JtagEnable,
    BuildPathUnix,
    BuildPathWindows,
    Rc4,
}

impl Rule {
    pub const COUNT: usize = 20;
    pub const ALL: [Rule; Rule::COUNT] = [
        Rule::AwsKeyId,
        Rule::GitHub,
        Rule::Slack,
        Rule::SlackWebhook,
        Rule::GoogleApiKey,
        Rule::Jwt,
        Rule::Bearer,
        Rule::BasicAuth,
        Rule::Password,
        Rule::DefaultPair,
        Rule::EmptyRoot,
        Rule::CryptHash,
        Rule::Debug,
        Rule::Uart,
        Rule::Prompt,
        Rule::Jtag,
        Rule::JtagEnable,
        Rule::BuildPathUnix,
        Rule::BuildPathWindows,
        Rule::Rc4,
    ];

    /// The kind of the rule's findings.
    pub fn kind(self) -> FindingKind {
        match self {
            Rule::AwsKeyId => FindingKind::AwsAccessKeyId,
            Rule::GitHub
            | Rule::Slack
            | Rule::SlackWebhook
            | Rule::GoogleApiKey
            | Rule::Jwt
            | Rule::Bearer
            | Rule::BasicAuth => FindingKind::Token,
            Rule::Password => FindingKind::HardcodedPassword,
            Rule::DefaultPair | Rule::EmptyRoot => FindingKind::DefaultCredential,
            Rule::CryptHash => FindingKind::PasswordHash,
            Rule::Debug | Rule::Uart | Rule::Prompt | Rule::Jtag => FindingKind::DebugString,
            Rule::JtagEnable => FindingKind::JtagEnable,
            Rule::BuildPathUnix | Rule::BuildPathWindows => FindingKind::BuildPath,
            Rule::Rc4 => FindingKind::WeakCrypto,
        }
    }

    /// The severity of the rule's findings.
    pub fn severity(self) -> Severity {
        match self.kind() {
            FindingKind::DebugString | FindingKind::BuildPath | FindingKind::WeakCrypto => {
                Severity::Low
            }
            FindingKind::JtagEnable => Severity::Medium,
            _ => Severity::High,
        }
    }
}

/// Default user/password pairs of IoT devices (vendor defaults and the Mirai list's most
/// common entries).
pub(crate) const DEFAULT_PAIRS: &[(&str, &str)] = &[
    ("admin", "admin"),
    ("admin", "password"),
    ("admin", "1234"),
    ("admin", "12345"),
    ("admin", "123456"),
    ("admin", "changeme"),
    ("root", "root"),
    ("root", "toor"),
    ("root", "admin"),
    ("root", "12345"),
    ("root", "123456"),
    ("root", "password"),
    ("root", "vizxv"),
    ("root", "xc3511"),
    ("root", "default"),
    ("user", "user"),
    ("guest", "guest"),
    ("support", "support"),
    ("ubnt", "ubnt"),
    ("pi", "raspberry"),
    ("default", "default"),
    ("test", "test"),
];

/// All anchors: (rule, exact case?, literal).
pub(crate) fn anchors() -> Vec<(Rule, bool, Vec<u8>)> {
    let mut v: Vec<(Rule, bool, Vec<u8>)> = Vec::new();
    let mut add = |rule, exact, s: &str| v.push((rule, exact, s.as_bytes().to_vec()));
    for p in [
        "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA",
    ] {
        add(Rule::AwsKeyId, true, p);
    }
    for p in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"] {
        add(Rule::GitHub, true, p);
    }
    for p in ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"] {
        add(Rule::Slack, true, p);
    }
    add(Rule::SlackWebhook, false, "hooks.slack.com/services/");
    add(Rule::GoogleApiKey, true, "AIza");
    add(Rule::Jwt, true, "eyJ");
    add(Rule::Bearer, false, "bearer ");
    add(Rule::BasicAuth, false, "authorization: basic ");
    for p in ["password", "passwd", "passphrase", "pwd", "pass"] {
        add(Rule::Password, false, p);
    }
    let mut passwords: Vec<&str> = DEFAULT_PAIRS.iter().map(|(_, p)| *p).collect();
    passwords.sort_unstable();
    passwords.dedup();
    for p in passwords {
        add(Rule::DefaultPair, true, p);
    }
    add(Rule::EmptyRoot, true, "root::0:0:");
    for p in ["$1$", "$5$", "$6$", "$2a$", "$2b$", "$2y$"] {
        add(Rule::CryptHash, true, p);
    }
    add(Rule::Debug, false, "debug");
    add(Rule::Uart, true, "UART");
    for p in [
        "BusyBox v",
        "U-Boot 20",
        "root@",
        "/ # ",
        "~ # ",
        "login: ",
        "shell> ",
    ] {
        add(Rule::Prompt, true, p);
    }
    add(Rule::Jtag, true, "JTAG");
    for p in [
        "jtag_enable",
        "enable_jtag",
        "jtag enable",
        "enable jtag",
        "jtag_en=",
        "swd_enable",
        "enable_swd",
    ] {
        add(Rule::JtagEnable, false, p);
    }
    add(Rule::BuildPathUnix, true, "/home/");
    add(Rule::BuildPathUnix, true, "/Users/");
    add(Rule::BuildPathWindows, false, "c:\\users\\");
    add(Rule::BuildPathWindows, false, "c:/users/");
    for p in ["RC4", "ARC4", "arcfour", "rc4_"] {
        add(Rule::Rc4, true, p);
    }
    v
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether the byte before `at` does not continue a word (so `at` starts one).
pub(crate) fn word_start(data: &[u8], at: usize) -> bool {
    at == 0 || !is_word(data[at - 1])
}

pub(crate) fn word_end(data: &[u8], at: usize) -> bool {
    data.get(at).is_none_or(|&b| !is_word(b))
}

/// Length of the run of bytes from `at` satisfying `ok`, at most `max`.
fn run(data: &[u8], at: usize, max: usize, ok: impl Fn(u8) -> bool) -> usize {
    data.get(at..)
        .unwrap_or(&[])
        .iter()
        .take(max)
        .take_while(|&&b| ok(b))
        .count()
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `Some(())` when `cond` holds: lets a rule bail out with `?`.
fn need(cond: bool) -> Option<()> {
    cond.then_some(())
}

fn hit(rule: Rule, offset: usize, len: usize, detail: String) -> Option<Hit> {
    Some(Hit {
        kind: rule.kind(),
        severity: rule.severity(),
        offset,
        len,
        detail,
        paired: None,
    })
}

/// Checks the match `start..end` of `rule` and builds its finding.
pub(crate) fn examine(data: &[u8], rule: Rule, start: usize, end: usize) -> Option<Hit> {
    match rule {
        Rule::AwsKeyId => aws(data, start, end),
        Rule::GitHub => {
            let min = if end - start == 4 { 36 } else { 22 };
            let n = run(data, end, 255, |b| b.is_ascii_alphanumeric() || b == b'_');
            let body = &data[end..end + n];
            let ok = word_start(data, start)
                && (if min == 36 { n == 36 } else { n >= min })
                && entropy(body) >= 3.5;
            ok.then_some(())?;
            hit(
                rule,
                start,
                end - start + n,
                format!("GitHub token {}", redacted(&data[start..end], body)),
            )
        }
        Rule::Slack => {
            let n = run(data, end, 255, |b| b.is_ascii_alphanumeric() || b == b'-');
            let body = &data[end..end + n];
            (n >= 20 && entropy(body) >= 3.0).then_some(())?;
            hit(
                rule,
                start,
                end - start + n,
                format!("Slack token {}", redacted(&data[start..end], body)),
            )
        }
        Rule::SlackWebhook => {
            let n = run(data, end, 128, |b| b.is_ascii_alphanumeric() || b == b'/');
            let body = &data[end..end + n];
            (n >= 30 && body.iter().filter(|&&b| b == b'/').count() == 2).then_some(())?;
            hit(
                rule,
                start,
                end - start + n,
                format!(
                    "Slack webhook URL {}",
                    redacted(b"hooks.slack.com/services/", body)
                ),
            )
        }
        Rule::GoogleApiKey => {
            let n = run(data, end, 64, b64url);
            let body = &data[end..end + n];
            (word_start(data, start) && n == 35 && entropy(body) >= 3.5).then_some(())?;
            hit(
                rule,
                start,
                4 + n,
                format!("Google API key {}", redacted(b"AIza", body)),
            )
        }
        Rule::Jwt => jwt(data, start),
        Rule::Bearer => {
            let n = run(data, end, 4096, |b| {
                b64url(b) || matches!(b, b'.' | b'~' | b'+' | b'/' | b'=')
            });
            let tok = &data[end..end + n];
            (n >= 20 && !tok.starts_with(b"eyJ") && entropy(tok) >= 3.5).then_some(())?;
            hit(
                rule,
                start,
                end - start + n,
                format!("bearer credential {}", redacted(b"", tok)),
            )
        }
        Rule::BasicAuth => {
            let n = run(data, end, 512, |b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
            });
            let tok = &data[end..end + n];
            let plain = crate::keys::base64_decode(tok)?;
            (n >= 8 && plain.contains(&b':') && plain.iter().all(|b| b.is_ascii_graphic()))
                .then_some(())?;
            hit(
                rule,
                start,
                end - start + n,
                format!("HTTP Basic credentials {}", redacted(b"", tok)),
            )
        }
        Rule::Password => crate::text_password::password(data, start, end),
        Rule::DefaultPair => crate::text_password::default_pair(data, start, end),
        Rule::EmptyRoot => {
            // A whole passwd line: start of a line, then `gecos:/home:/shell`.
            let line = run(data, end, 256, |b| b.is_ascii_graphic() || b == b' ');
            let rest = &data[end..end + line];
            let fields: Vec<&[u8]> = rest.split(|&b| b == b':').collect();
            let line_start = start == 0 || matches!(data[start - 1], 0 | b'\n');
            need(
                line_start
                    && fields.len() == 3
                    && fields[1].starts_with(b"/")
                    && fields[2].starts_with(b"/"),
            )?;
            hit(
                rule,
                start,
                end - start + line,
                "passwd entry: root with an empty password".into(),
            )
        }
        Rule::CryptHash => crate::text_password::crypt_hash(data, start, end),
        Rule::Debug => crate::text_debug::debug(data, start, end),
        Rule::Uart => (word_start(data, start) && word_end_or_digit(data, end))
            .then_some(())
            .and_then(|_| hit(rule, start, end - start, "UART string".into())),
        Rule::Prompt => hit(
            rule,
            start,
            end - start,
            format!(
                "shell or bootloader prompt \"{}\"",
                String::from_utf8_lossy(&data[start..end]).trim()
            ),
        ),
        Rule::Jtag => (word_start(data, start) && word_end(data, end))
            .then_some(())
            .and_then(|_| hit(rule, start, end - start, "JTAG string".into())),
        Rule::JtagEnable => hit(
            rule,
            start,
            end - start,
            format!(
                "debug port switch \"{}\"",
                String::from_utf8_lossy(&data[start..end])
            ),
        ),
        Rule::BuildPathUnix | Rule::BuildPathWindows => {
            crate::text_debug::build_path(data, rule, start, end)
        }
        Rule::Rc4 => (word_start(data, start) || data[start..].starts_with(b"rc4_"))
            .then_some(())
            .filter(|_| word_end_or_digit(data, end) || data[start..end].ends_with(b"_"))
            .and_then(|_| {
                hit(
                    rule,
                    start,
                    end - start,
                    format!(
                        "RC4 named (\"{}\"): a broken stream cipher",
                        String::from_utf8_lossy(&data[start..end])
                    ),
                )
            }),
    }
}

fn word_end_or_digit(data: &[u8], at: usize) -> bool {
    word_end(data, at) || data.get(at).is_some_and(|b| b.is_ascii_digit())
}

fn aws(data: &[u8], start: usize, end: usize) -> Option<Hit> {
    let n = run(data, end, 17, |b| {
        b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
    });
    let id = &data[start..end + n];
    let ok = n == 16
        && word_start(data, start)
        && word_end(data, end + n)
        && !id.ends_with(b"EXAMPLE")
        && entropy(&data[end..end + n]) >= 2.0;
    ok.then_some(())?;
    let mut h = hit(
        Rule::AwsKeyId,
        start,
        20,
        format!("AWS access key id {}", redacted(&data[start..end], id)),
    )?;
    // The secret key: 40 base64 characters with high entropy within 256 bytes either side.
    let lo = start.saturating_sub(256);
    let hi = (end + n + 256).min(data.len());
    let mut i = lo;
    while i < hi {
        let m = run(data, i, 41, |b| {
            b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
        });
        let before_ok = i == 0 || !(is_word(data[i - 1]) || matches!(data[i - 1], b'/' | b'+'));
        if m == 40 && before_ok {
            let secret = &data[i..i + 40];
            let mixed = secret.iter().any(u8::is_ascii_lowercase)
                && secret.iter().any(u8::is_ascii_uppercase);
            if mixed && entropy(secret) >= 4.0 {
                h.paired = Some(Box::new(Hit {
                    kind: FindingKind::AwsSecretKey,
                    severity: Severity::Critical,
                    offset: i,
                    len: 40,
                    detail: format!(
                        "AWS secret access key next to key id at {start:#x}: {}",
                        redacted(b"", secret)
                    ),
                    paired: None,
                }));
                break;
            }
        }
        i += m.max(1);
    }
    Some(h)
}

fn jwt(data: &[u8], start: usize) -> Option<Hit> {
    if !word_start(data, start) {
        return None;
    }
    let h = run(data, start, 1024, b64url);
    if h < 10 || data.get(start + h) != Some(&b'.') {
        return None;
    }
    let p0 = start + h + 1;
    let p = run(data, p0, 4096, b64url);
    if p < 2 || data.get(p0 + p) != Some(&b'.') {
        return None;
    }
    let s0 = p0 + p + 1;
    let s = run(data, s0, 1024, b64url);
    if s < 32 || entropy(&data[s0..s0 + s]) < 3.5 {
        return None;
    }
    // The header must decode to a JSON object naming an algorithm.
    let header: Vec<u8> = data[start..start + h]
        .iter()
        .map(|&b| match b {
            b'-' => b'+',
            b'_' => b'/',
            b => b,
        })
        .collect();
    let json = crate::keys::base64_decode(&header)?;
    if !(json.starts_with(b"{") && json.windows(5).any(|w| w == b"\"alg\"")) {
        return None;
    }
    let len = s0 + s - start;
    hit(
        Rule::Jwt,
        start,
        len,
        format!(
            "JSON Web Token {}",
            redacted(b"eyJ", &data[start..start + len])
        ),
    )
}
