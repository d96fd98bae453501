//! Suppressions: findings an operator has accepted, hidden from the report and counted.
//!
//! The file is TOML, one `[[suppress]]` table per accepted finding pattern:
//!
//! ```toml
//! [[suppress]]
//! check = "device-no-recent-attestation"   # a check id
//! resource = "lab-*"                        # resource id or serial; `*` and `?` wildcards
//! expires = "2027-01-31T00:00:00Z"          # optional, RFC 3339; after it the finding shows again
//! reason = "lab benches do not report boots"
//! ```
//!
//! Unknown keys, unknown check ids, empty resources and empty reasons are refused, so a typo
//! never silently suppresses nothing (or everything).

use serde::Deserialize;
use time::OffsetDateTime;

use super::model::{CheckId, Finding};

/// One accepted finding pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The check whose findings it hides.
    pub check: CheckId,
    /// Glob over the finding's resource id or serial (`*` any run, `?` one character).
    pub resource: String,
    /// After this (Unix seconds) the suppression no longer applies.
    pub expires: Option<i64>,
    /// Why the finding is accepted (kept for reviewers).
    pub reason: String,
}

/// Why a suppressions file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuppressionError {
    /// Not TOML, an unknown key, a wrong type or a bad time.
    #[error("invalid suppressions file: {0}")]
    Syntax(String),
    /// `check` names no check.
    #[error("suppression {index}: unknown check {check:?} (known: {known})")]
    UnknownCheck {
        /// 0-based position in the file.
        index: usize,
        /// What was written.
        check: String,
        /// The valid ids.
        known: String,
    },
    /// `resource` is empty.
    #[error("suppression {index}: `resource` is empty (use \"*\" to accept every resource)")]
    EmptyResource {
        /// 0-based position in the file.
        index: usize,
    },
    /// `reason` is empty.
    #[error("suppression {index}: `reason` is empty (say why the finding is accepted)")]
    EmptyReason {
        /// 0-based position in the file.
        index: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    suppress: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    check: String,
    resource: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires: Option<OffsetDateTime>,
    reason: String,
}

/// Parses a suppressions file (see the module documentation).
pub fn parse_suppressions(text: &str) -> Result<Vec<Suppression>, SuppressionError> {
    let file: File = toml::from_str(text).map_err(|e| SuppressionError::Syntax(e.to_string()))?;
    file.suppress
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let check = e
                .check
                .parse::<CheckId>()
                .map_err(|_| SuppressionError::UnknownCheck {
                    index,
                    check: e.check.clone(),
                    known: CheckId::ALL
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            if e.resource.is_empty() {
                return Err(SuppressionError::EmptyResource { index });
            }
            if e.reason.trim().is_empty() {
                return Err(SuppressionError::EmptyReason { index });
            }
            Ok(Suppression {
                check,
                resource: e.resource,
                expires: e.expires.map(OffsetDateTime::unix_timestamp),
                reason: e.reason,
            })
        })
        .collect()
}

impl Suppression {
    /// Whether this suppression hides `finding` at `now`.
    pub fn hides(&self, finding: &Finding, now: i64) -> bool {
        self.check == finding.check
            && self.expires.is_none_or(|t| now < t)
            && (glob(&self.resource, &finding.resource.id)
                || finding
                    .serial
                    .as_deref()
                    .is_some_and(|s| glob(&self.resource, s)))
    }
}

/// Splits `findings` into (shown, number suppressed).
pub(crate) fn apply(
    findings: Vec<Finding>,
    suppressions: &[Suppression],
    now: i64,
) -> (Vec<Finding>, usize) {
    let before = findings.len();
    let shown: Vec<Finding> = findings
        .into_iter()
        .filter(|f| !suppressions.iter().any(|s| s.hides(f, now)))
        .collect();
    let hidden = before - shown.len();
    (shown, hidden)
}

/// `*` matches any run of characters (also empty), `?` exactly one; everything else itself.
/// Iterative, backtracking only to the last `*`: O(pattern × text).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::model::{Resource, ResourceKind, Severity};
    use proptest::prelude::*;

    fn finding(check: CheckId, id: &str, serial: Option<&str>) -> Finding {
        Finding::new(
            check,
            Severity::Medium,
            Resource {
                kind: ResourceKind::Device,
                id: id.into(),
            },
            serial.map(str::to_owned),
            None,
            String::new(),
        )
    }

    #[test]
    fn globs_match_as_documented() {
        assert!(glob("*", ""));
        assert!(glob("lab-*", "lab-1"));
        assert!(glob("lab-?", "lab-1"));
        assert!(!glob("lab-?", "lab-12"));
        assert!(glob("*-1*", "a-b-10"));
        assert!(!glob("lab-*", "prod-lab-1"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn a_suppression_hides_only_its_check_and_resources_until_it_expires() {
        let text = r#"
            [[suppress]]
            check = "device-certificate-expiring"
            resource = "lab-*"
            expires = "2030-01-01T00:00:00Z"
            reason = "lab devices are re-flashed weekly"
        "#;
        let s = parse_suppressions(text).unwrap();
        assert_eq!(s.len(), 1);
        let before = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let now = before.unix_timestamp();
        let f = finding(CheckId::DeviceCertificateExpiring, "lab-1", None);
        assert!(s[0].hides(&f, now));
        assert!(!s[0].hides(
            &finding(CheckId::DeviceCertificateExpiring, "prod-1", None),
            now
        ));
        assert!(!s[0].hides(
            &finding(CheckId::DeviceCertificateTooOld, "lab-1", None),
            now
        ));
        assert!(!s[0].hides(&f, 1_893_456_000), "expired at 2030-01-01");
        // Matching by serial.
        let by_serial = Suppression {
            resource: "1a2b*".into(),
            ..s[0].clone()
        };
        assert!(by_serial.hides(
            &finding(CheckId::DeviceCertificateExpiring, "prod-1", Some("1a2b3c")),
            now
        ));
        let (shown, hidden) = apply(
            vec![
                f,
                finding(CheckId::DeviceCertificateExpiring, "prod-1", None),
            ],
            &s,
            now,
        );
        assert_eq!((shown.len(), hidden), (1, 1));
        assert_eq!(shown[0].resource.id, "prod-1");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let ok = "[[suppress]]\ncheck = \"ca-weak-key\"\nresource = \"*\"\nreason = \"x\"\n";
        assert_eq!(parse_suppressions(ok).unwrap().len(), 1);
        assert_eq!(parse_suppressions("").unwrap(), vec![]);
        assert!(matches!(
            parse_suppressions(&ok.replace("ca-weak-key", "ca-weak")),
            Err(SuppressionError::UnknownCheck { index: 0, .. })
        ));
        assert!(matches!(
            parse_suppressions(&ok.replace("\"*\"", "\"\"")),
            Err(SuppressionError::EmptyResource { index: 0 })
        ));
        assert!(matches!(
            parse_suppressions(&ok.replace("\"x\"", "\" \"")),
            Err(SuppressionError::EmptyReason { index: 0 })
        ));
        assert!(matches!(
            parse_suppressions(&format!("{ok}reasn = \"typo\"\n")),
            Err(SuppressionError::Syntax(_))
        ));
        assert!(matches!(
            parse_suppressions(&format!("{ok}expires = \"tomorrow\"\n")),
            Err(SuppressionError::Syntax(_))
        ));
    }

    /// A reference matcher: the textbook recursive definition.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some((c, rest)) => t
                .split_first()
                .is_some_and(|(tc, trest)| (*c == '?' || c == tc) && reference(rest, trest)),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_recursive_definition(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(glob(&p, &t), reference(&pc, &tc));
        }

        #[test]
        fn parse_never_panics(text in "(.|\n){0,200}") {
            let _ = parse_suppressions(&text);
        }
    }
}
