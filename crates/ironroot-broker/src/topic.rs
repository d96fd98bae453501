//! MQTT topic names and topic filters: validation and matching (MQTT 3.1.1 §4.7, MQTT 5 §4.7).
//!
//! Rules implemented here, because every authorization decision depends on them:
//!
//! - a topic *name* (what a PUBLISH carries) is non-empty, at most 65,535 bytes, contains no
//!   `+`, `#` or NUL;
//! - a topic *filter* (what a SUBSCRIBE carries) is non-empty, at most 65,535 bytes, contains no
//!   NUL, uses `+` only as a whole level and `#` only as the whole last level;
//! - a filter starting with a wildcard does not match a topic starting with `$`
//!   ([MQTT-4.7.2-1]): `#` and `+/x` never see `$SYS/...`;
//! - `a/#` also matches the parent `a` ([MQTT-4.7.1-2]);
//! - a shared subscription `$share/<group>/<filter>` (MQTT 5 §4.8.2) names a non-empty group
//!   without `+`, `#` or `/`, followed by a valid filter, which is what messages match.

/// Longest topic name or filter MQTT can encode (a UTF-8 string with a 16-bit length).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Why a topic name or filter is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic or filter is the empty string.
    #[error("topic is empty")]
    Empty,
    /// The topic or filter is longer than 65,535 bytes.
    #[error("topic is longer than {MAX_TOPIC_BYTES} bytes")]
    TooLong,
    /// The topic or filter contains the NUL character.
    #[error("topic contains the NUL character")]
    Nul,
    /// A topic name (not a filter) contains `+` or `#`.
    #[error("topic name contains a wildcard ('+' or '#'); wildcards are only allowed in filters")]
    WildcardInName,
    /// `#` is not the whole last level of a filter, or `+` is not a whole level.
    #[error("misplaced wildcard: '+' must fill a whole level and '#' must be the whole last level")]
    MisplacedWildcard,
    /// A `$share/` filter whose group name is empty or contains `+` or `#`, or that has no
    /// filter after the group.
    #[error(
        "shared subscription must be $share/<group>/<filter> with a non-empty group without '+' or '#'"
    )]
    SharedGroupInvalid,
}

/// Checks a topic name as carried by PUBLISH and by a last-will message.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter as carried by SUBSCRIBE and UNSUBSCRIBE.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "#" if last => {}
            "+" => {}
            _ if level.contains(['+', '#']) => return Err(TopicError::MisplacedWildcard),
            _ => {}
        }
    }
    Ok(())
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// True when `filter` contains `+` or `#`.
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// True for MQTT 5 shared-subscription filters (`$share/<group>/<filter>`).
pub fn is_shared_subscription(filter: &str) -> bool {
    filter.starts_with("$share/")
}

/// A shared subscription filter split into its parts (see [`parse_shared`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name: subscribers with the same group and filter share the messages.
    pub group: &'a str,
    /// The topic filter messages are matched against.
    pub filter: &'a str,
}

/// Splits `$share/<group>/<filter>`: `Ok(None)` for an ordinary filter, an error for a
/// malformed shared one. The filter part is checked like any filter.
pub fn parse_shared(filter: &str) -> Result<Option<SharedFilter<'_>>, TopicError> {
    let Some(rest) = filter.strip_prefix("$share/") else {
        return Ok(None);
    };
    let (group, inner) = rest.split_once('/').ok_or(TopicError::SharedGroupInvalid)?;
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return Err(TopicError::SharedGroupInvalid);
    }
    validate_topic_filter(inner)?;
    Ok(Some(SharedFilter {
        group,
        filter: inner,
    }))
}

/// Does `filter` match the concrete topic name `topic`?
///
/// Both are assumed valid (see [`validate_topic_filter`], [`validate_topic_name`]). This is the
/// reference matcher: the subscription trie and the retained-message store are tested against it.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        match (f, topic_levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_topic_name("devices/a/telemetry"), Ok(()));
        assert_eq!(validate_topic_name("/"), Ok(()));
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a/#"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::Nul));
        assert_eq!(
            validate_topic_name(&"x".repeat(65_536)),
            Err(TopicError::TooLong)
        );
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+/telemetry",
            "a/+/b",
            "/",
            "$SYS/#",
            "+/#",
        ] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["a#", "a/#/b", "a+/b", "a/b+", "#/a", "##"] {
            assert_eq!(
                validate_topic_filter(bad),
                Err(TopicError::MisplacedWildcard),
                "{bad}"
            );
        }
        assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn shared_filters() {
        assert_eq!(parse_shared("devices/+/telemetry"), Ok(None));
        assert_eq!(
            parse_shared("$share/ingest/devices/+/telemetry"),
            Ok(Some(SharedFilter {
                group: "ingest",
                filter: "devices/+/telemetry"
            }))
        );
        assert_eq!(
            parse_shared("$share/g/#").map(|s| s.map(|s| s.filter)),
            Ok(Some("#"))
        );
        for bad in [
            "$share/",
            "$share//a",
            "$share/g",
            "$share/g/",
            "$share/+/a",
            "$share/#/a",
            "$share/g+/a",
        ] {
            assert_eq!(
                parse_shared(bad),
                Err(TopicError::SharedGroupInvalid),
                "{bad}"
            );
        }
        assert_eq!(
            parse_shared("$share/g/a/#/b"),
            Err(TopicError::MisplacedWildcard)
        );
    }

    proptest::proptest! {
        /// Whatever the bytes, a shared filter that parses rebuilds to the input, has a clean
        /// group, and a filter that is valid on its own.
        #[test]
        fn parse_shared_is_exact(s in "(\\$share/)?[a-z+#/$]{0,12}") {
            match parse_shared(&s) {
                Ok(None) => proptest::prop_assert!(!s.starts_with("$share/")),
                Ok(Some(sh)) => {
                    proptest::prop_assert_eq!(format!("$share/{}/{}", sh.group, sh.filter), s.clone());
                    proptest::prop_assert!(!sh.group.is_empty() && !sh.group.contains(['+', '#', '/']));
                    proptest::prop_assert_eq!(validate_topic_filter(sh.filter), Ok(()));
                }
                Err(_) => proptest::prop_assert!(s.starts_with("$share/")),
            }
        }
    }

    #[test]
    fn matching() {
        let yes = [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("#", "a/b"),
            ("+/+", "/x"),
            ("+", ""),
            ("$SYS/#", "$SYS/broker"),
            ("$SYS/+", "$SYS/x"),
            ("a//b", "a//b"),
            ("a/+/b", "a//b"),
        ];
        for (f, t) in yes {
            assert!(filter_matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/b", "a/c"),
            ("a/+", "a/b/c"),
            ("a/+", "a"),
            ("#", "$SYS/broker"),
            ("+/broker", "$SYS/broker"),
            ("+/#", "$x"),
            ("a/b/#", "a"),
            ("a", "a/b"),
        ];
        for (f, t) in no {
            assert!(!filter_matches(f, t), "{f} should not match {t}");
        }
    }
}
