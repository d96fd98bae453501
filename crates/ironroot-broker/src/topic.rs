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
//! - `a/#` also matches the parent `a` ([MQTT-4.7.1-2]).

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

/// True for MQTT 5 shared-subscription filters (`$share/<group>/<filter>`), which this broker
/// does not support.
pub fn is_shared_subscription(filter: &str) -> bool {
    filter.starts_with("$share/")
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
