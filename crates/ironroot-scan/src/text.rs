//! Text detectors: tokens, passwords, default credentials, password hashes, debug strings,
//! JTAG switches, build paths and RC4 names.
//!
//! Every anchor (a literal such as `AKIA`, `ghp_`, `password`, `/home/`) is found in one
//! overlapping Aho-Corasick pass over the whole input; each match then looks at most a few
//! hundred bytes around itself. Token shapes must also pass an entropy check (Shannon bits per
//! character), which is what keeps `AKIAEXAMPLEEXAMPLE00`-like strings and identifiers out.
//! Low-severity rules report at most [`MAX_PER_RULE`] occurrences each and then one summary.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::finding::{FindingKind, Severity, fingerprint};
use crate::scanner::Ctx;
use crate::text_rules::{self as rules, Rule};

/// Most findings one low-severity rule reports before summarising the rest.
pub const MAX_PER_RULE: usize = 64;

struct Anchors {
    ac: AhoCorasick,
    /// Per pattern: its rule and whether it must match with this exact case.
    meta: Vec<(Rule, bool, Vec<u8>)>,
}

fn anchors() -> &'static Anchors {
    static A: OnceLock<Anchors> = OnceLock::new();
    A.get_or_init(|| {
        let meta = rules::anchors();
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(meta.iter().map(|(_, _, p)| p))
            .expect("anchor patterns build");
        Anchors { ac, meta }
    })
}

/// Runs the text detectors.
pub(crate) fn scan(ctx: &mut Ctx<'_>) {
    let a = anchors();
    let data = ctx.data;
    let mut counts = [0usize; Rule::COUNT];
    for m in a.ac.find_overlapping_iter(data) {
        let (rule, exact, pat) = &a.meta[m.pattern().as_usize()];
        if *exact && &data[m.start()..m.end()] != pat.as_slice() {
            continue;
        }
        let Some(hit) = rules::examine(data, *rule, m.start(), m.end()) else {
            continue;
        };
        let n = &mut counts[*rule as usize];
        *n += 1;
        if hit.severity <= Severity::Low && *n > MAX_PER_RULE {
            continue;
        }
        ctx.push(hit.kind, hit.severity, hit.offset, hit.len, hit.detail);
        if let Some(extra) = hit.paired {
            ctx.push(
                extra.kind,
                extra.severity,
                extra.offset,
                extra.len,
                extra.detail,
            );
        }
    }
    for rule in Rule::ALL {
        let n = counts[rule as usize];
        if n > MAX_PER_RULE && rule.severity() <= Severity::Low {
            ctx.push(
                FindingKind::Container,
                Severity::Info,
                0,
                data.len(),
                format!(
                    "{} more {} findings not listed (rule {rule:?})",
                    n - MAX_PER_RULE,
                    rule.kind()
                ),
            );
        }
    }
}

/// A text finding before it is recorded.
pub(crate) struct Hit {
    pub kind: FindingKind,
    pub severity: Severity,
    pub offset: usize,
    pub len: usize,
    pub detail: String,
    /// A second finding the same anchor proves (an AWS secret key next to its key id).
    pub paired: Option<Box<Hit>>,
}

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// `"<prefix>… (N chars, sha256:…)"`: the public type marker, the length, a fingerprint.
pub(crate) fn redacted(prefix: &[u8], secret: &[u8]) -> String {
    format!(
        "{}… ({} chars, {})",
        String::from_utf8_lossy(prefix),
        secret.len(),
        fingerprint(secret)
    )
}
