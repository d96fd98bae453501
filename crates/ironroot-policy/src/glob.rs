//! IAM-style wildcard matching: `*` matches any run of characters (including `/` and none at
//! all), `?` exactly one character; everything else, MQTT's `+` and `#` included, is literal.
//!
//! Matching is linear-time backtracking on the last `*` (never exponential): at most
//! O(pattern × text) steps, and the engine caps resource names at
//! [`crate::MAX_RESOURCE_NAME_BYTES`].

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// Literal text (never empty).
    Lit(Box<str>),
    /// `*`.
    AnySeq,
    /// `?`.
    AnyOne,
}

/// A compiled pattern, specialised for the common shapes so that most decisions are a string
/// comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// No wildcard: the text must be equal.
    Exact(Box<str>),
    /// Literal text followed by one trailing `*`.
    Prefix(Box<str>),
    /// `*` alone: everything.
    Any,
    /// Anything else.
    Glob(Box<[Token]>),
}

impl Matcher {
    /// Builds a matcher from tokens, merging adjacent literals and runs of `*`.
    pub(crate) fn new(tokens: Vec<Token>) -> Self {
        let mut norm: Vec<Token> = Vec::with_capacity(tokens.len());
        for t in tokens {
            match (norm.last_mut(), t) {
                (_, Token::Lit(s)) if s.is_empty() => {}
                (Some(Token::Lit(prev)), Token::Lit(s)) => {
                    *prev = format!("{prev}{s}").into_boxed_str();
                }
                (Some(Token::AnySeq), Token::AnySeq) => {}
                (_, t) => norm.push(t),
            }
        }
        match norm.as_slice() {
            [] => Matcher::Exact("".into()),
            [Token::Lit(s)] => Matcher::Exact(s.clone()),
            [Token::AnySeq] => Matcher::Any,
            [Token::Lit(s), Token::AnySeq] => Matcher::Prefix(s.clone()),
            _ => Matcher::Glob(norm.into_boxed_slice()),
        }
    }

    /// Whether `text` matches.
    #[inline]
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Exact(s) => **s == *text,
            Matcher::Prefix(p) => text.starts_with(&**p),
            Matcher::Any => true,
            Matcher::Glob(tokens) => match_tokens(tokens, text),
        }
    }
}

/// Matches `text` against `tokens`.
pub(crate) fn match_tokens(tokens: &[Token], text: &str) -> bool {
    let mut ti = 0;
    let mut pos = 0;
    // After a `*`: the token that follows it, and where in the text that token is tried next.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        match tokens.get(ti) {
            Some(Token::AnySeq) => {
                ti += 1;
                match tokens.get(ti) {
                    // A trailing `*` matches whatever is left.
                    None => return true,
                    // Skip straight to the next place the following literal occurs.
                    Some(Token::Lit(s)) => match text[pos..].find(&**s) {
                        Some(i) => pos += i,
                        None => return false,
                    },
                    Some(_) => {}
                }
                resume = Some((ti, pos));
                continue;
            }
            Some(Token::AnyOne) if pos < text.len() => {
                let c_len = text[pos..].chars().next().map_or(1, char::len_utf8);
                pos += c_len;
                ti += 1;
                continue;
            }
            Some(Token::Lit(s)) if text[pos..].starts_with(&**s) => {
                pos += s.len();
                ti += 1;
                continue;
            }
            None if pos == text.len() => return true,
            _ => {}
        }
        // Mismatch: let the last `*` swallow one more character and try again from there.
        let Some((after_star, start)) = resume else {
            return false;
        };
        let Some(c) = text[start..].chars().next() else {
            return false;
        };
        let mut next = start + c.len_utf8();
        if let Some(Token::Lit(s)) = tokens.get(after_star) {
            match text[next..].find(&**s) {
                Some(i) => next += i,
                None => return false,
            }
        }
        resume = Some((after_star, next));
        ti = after_star;
        pos = next;
    }
}

/// Tokenises a plain pattern in which every `*` and `?` is a wildcard.
pub(crate) fn tokens_of(pattern: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut lit = String::new();
    for c in pattern.chars() {
        match c {
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Token::Lit(std::mem::take(&mut lit).into_boxed_str()));
                }
                out.push(if c == '*' {
                    Token::AnySeq
                } else {
                    Token::AnyOne
                });
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Token::Lit(lit.into_boxed_str()));
    }
    out
}

/// Matches `text` against a plain wildcard pattern (used for action names and ARN fields).
pub(crate) fn simple_match(pattern: &str, text: &str) -> bool {
    Matcher::new(tokens_of(pattern)).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_iam_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("devices/*", "devices/a/b/c", true),
            ("devices/*", "devices/", true),
            ("devices/*", "devices", false),
            ("a/?/c", "a/b/c", true),
            ("a/?/c", "a/bb/c", false),
            ("a/?/c", "a//c", false),
            ("a/?/c", "a/é/c", true),
            ("*/telemetry", "x/y/telemetry", true),
            ("*a*b", "xxaxxab", true),
            ("*a*b", "xxaxxa", false),
            ("a*a*a", "aaa", true),
            ("a*a*a", "aa", false),
            ("foo/+/bar", "foo/x/bar", false),
            ("foo/+/bar", "foo/+/bar", true),
            ("foo/#", "foo/x", false),
            ("foo/#", "foo/#", true),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("?*", "", false),
            ("*?", "é", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                simple_match(pattern, text),
                *expected,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn specialises_common_shapes() {
        assert_eq!(Matcher::new(tokens_of("a/b")), Matcher::Exact("a/b".into()));
        assert_eq!(
            Matcher::new(tokens_of("a/**")),
            Matcher::Prefix("a/".into())
        );
        assert_eq!(Matcher::new(tokens_of("**")), Matcher::Any);
        assert!(matches!(Matcher::new(tokens_of("a*b")), Matcher::Glob(_)));
    }

    #[test]
    fn worst_case_pattern_stays_fast() {
        let pattern = "*a".repeat(1000) + "b";
        let text = "a".repeat(4096);
        let start = std::time::Instant::now();
        assert!(!simple_match(&pattern, &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    /// The regex crate as an independent oracle for IAM wildcards.
    fn oracle(pattern: &str, text: &str) -> bool {
        let mut re = String::from("^");
        for c in pattern.chars() {
            match c {
                '*' => re.push_str("(?s:.*)"),
                '?' => re.push_str("(?s:.)"),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap().is_match(text)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 5000, ..Default::default() })]

        #[test]
        fn agrees_with_regex(pattern in "[ab*?/+#é]{0,10}", text in "[ab/+#é*?]{0,14}") {
            proptest::prop_assert_eq!(simple_match(&pattern, &text), oracle(&pattern, &text), "{:?} vs {:?}", pattern, text);
        }
    }
}
