//! A small, strict JSON parser that remembers where every value starts.
//!
//! Why not `serde_json`: policy errors must point at the offending line and column ("unknown
//! action at line 7, column 18"), and serde's data model drops positions once a value is parsed.
//! This parser also refuses duplicate object keys — `{"Effect":"Allow","Effect":"Deny"}` means
//! different things to different JSON libraries, and a policy must mean one thing — and bounds
//! nesting depth so hostile input cannot exhaust the stack. It accepts exactly RFC 8259 JSON
//! (tested against `serde_json` as an oracle); it is only used for policy documents, which are
//! small (see [`crate::MAX_DOCUMENT_BYTES`]).

use crate::error::{JsonError, Location};

/// Maximum nesting of arrays and objects. A policy needs six levels at most
/// (document → Statement → statement → Condition → operator → key → values).
pub(crate) const MAX_DEPTH: usize = 16;

/// A parsed JSON value with the byte offset at which it starts in the source text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Value {
    /// Byte offset of the first character of the value.
    pub(crate) offset: usize,
    /// The value itself.
    pub(crate) kind: Kind,
}

/// The kinds of JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    /// A number, kept as its source text (policies never compute with numbers).
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in source order; keys are unique (duplicates are a parse error).
    Object(Vec<Member>),
}

/// One `"key": value` pair of an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    /// The key, unescaped.
    pub(crate) key: String,
    /// Byte offset of the key's opening quote.
    pub(crate) key_offset: usize,
    /// The value.
    pub(crate) value: Value,
}

impl Kind {
    /// A short name of the kind for error messages ("expected a string, found an array").
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::String(_) => "a string",
            Kind::Array(_) => "an array",
            Kind::Object(_) => "an object",
        }
    }
}

/// Converts a byte offset in `text` into a 1-based line and column (columns count characters).
pub(crate) fn location(text: &str, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in text.as_bytes()[..offset].iter().enumerate() {
        if *b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    // Count characters, not bytes, so a column matches what an editor shows.
    let column = String::from_utf8_lossy(&text.as_bytes()[line_start..offset])
        .chars()
        .count()
        + 1;
    Location { line, column }
}

/// Parses one JSON value that must span the whole of `text` (surrounding whitespace allowed).
pub(crate) fn parse(text: &str) -> Result<Value, (JsonError, usize)> {
    let mut p = Parser {
        bytes: text.as_bytes(),
        text,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    let value = p.value()?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err((JsonError::TrailingCharacters, p.pos));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    depth: usize,
}

type PResult<T> = Result<T, (JsonError, usize)>;

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn err<T>(&self, e: JsonError) -> PResult<T> {
        Err((e, self.pos))
    }

    fn value(&mut self) -> PResult<Value> {
        let offset = self.pos;
        let kind = match self.peek() {
            None => return self.err(JsonError::UnexpectedEnd),
            Some(b'{') => self.nested(Self::object)?,
            Some(b'[') => self.nested(Self::array)?,
            Some(b'"') => Kind::String(self.string()?),
            Some(b't') => self.keyword("true", Kind::Bool(true))?,
            Some(b'f') => self.keyword("false", Kind::Bool(false))?,
            Some(b'n') => self.keyword("null", Kind::Null)?,
            Some(b'-' | b'0'..=b'9') => Kind::Number(self.number()?),
            Some(_) => return self.err(JsonError::UnexpectedCharacter(self.current_char())),
        };
        Ok(Value { offset, kind })
    }

    fn current_char(&self) -> char {
        self.text[self.pos..].chars().next().unwrap_or('\0')
    }

    fn nested(&mut self, f: fn(&mut Self) -> PResult<Kind>) -> PResult<Kind> {
        if self.depth >= MAX_DEPTH {
            return self.err(JsonError::TooDeep { limit: MAX_DEPTH });
        }
        self.depth += 1;
        let kind = f(self)?;
        self.depth -= 1;
        Ok(kind)
    }

    fn keyword(&mut self, word: &'static str, kind: Kind) -> PResult<Kind> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(kind)
        } else {
            self.err(JsonError::UnexpectedCharacter(self.current_char()))
        }
    }

    fn object(&mut self) -> PResult<Kind> {
        self.pos += 1; // '{'
        let mut members: Vec<Member> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Kind::Object(members));
        }
        loop {
            self.skip_ws();
            let key_offset = self.pos;
            match self.peek() {
                Some(b'"') => {}
                None => return self.err(JsonError::UnexpectedEnd),
                Some(_) => return self.err(JsonError::ExpectedKey),
            }
            let key = self.string()?;
            if members.iter().any(|m| m.key == key) {
                return Err((JsonError::DuplicateKey(key), key_offset));
            }
            self.skip_ws();
            match self.peek() {
                Some(b':') => self.pos += 1,
                None => return self.err(JsonError::UnexpectedEnd),
                Some(_) => return self.err(JsonError::ExpectedColon),
            }
            self.skip_ws();
            let value = self.value()?;
            members.push(Member {
                key,
                key_offset,
                value,
            });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Kind::Object(members));
                }
                None => return self.err(JsonError::UnexpectedEnd),
                Some(_) => return self.err(JsonError::ExpectedCommaOrEnd),
            }
        }
    }

    fn array(&mut self) -> PResult<Kind> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Kind::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Kind::Array(items));
                }
                None => return self.err(JsonError::UnexpectedEnd),
                Some(_) => return self.err(JsonError::ExpectedCommaOrEnd),
            }
        }
    }

    fn string(&mut self) -> PResult<String> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of plain characters up to the next quote, backslash or control byte.
            let start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // `start..pos` ends before an ASCII byte (or at the end), so it is a char boundary.
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                None => return self.err(JsonError::UnterminatedString),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => return self.err(JsonError::ControlCharacterInString),
            }
        }
    }

    fn escape(&mut self) -> PResult<char> {
        let Some(b) = self.peek() else {
            return self.err(JsonError::UnterminatedString);
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => {
                self.pos -= 1;
                return self.err(JsonError::InvalidEscape);
            }
        })
    }

    fn hex4(&mut self) -> PResult<u16> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            return self.err(JsonError::InvalidEscape);
        };
        let mut v: u16 = 0;
        for d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return self.err(JsonError::InvalidEscape),
            };
            v = (v << 4) | u16::from(n);
        }
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> PResult<char> {
        let start = self.pos - 2;
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                // A high surrogate must be followed by an escaped low surrogate.
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return Err((JsonError::LoneSurrogate, start));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err((JsonError::LoneSurrogate, start));
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err((JsonError::LoneSurrogate, start)),
            other => u32::from(other),
        };
        char::from_u32(code).ok_or((JsonError::LoneSurrogate, start))
    }

    fn number(&mut self) -> PResult<String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.err(JsonError::InvalidNumber),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.err(JsonError::InvalidNumber);
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.err(JsonError::InvalidNumber);
            }
            self.digits();
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> JsonError {
        parse(text).unwrap_err().0
    }

    #[test]
    fn parses_nested_values_with_offsets() {
        let v = parse(r#" {"a": [1, "x\u00e9\ud83d\ude00", true, null]} "#).unwrap();
        assert_eq!(v.offset, 1);
        let Kind::Object(members) = v.kind else {
            panic!("object expected")
        };
        assert_eq!(members[0].key, "a");
        assert_eq!(members[0].key_offset, 2);
        let Kind::Array(items) = &members[0].value.kind else {
            panic!("array expected")
        };
        assert_eq!(items[0].kind, Kind::Number("1".into()));
        assert_eq!(items[1].kind, Kind::String("xé😀".into()));
        assert_eq!(items[1].offset, 11);
        assert_eq!(items[2].kind, Kind::Bool(true));
        assert_eq!(items[3].kind, Kind::Null);
    }

    #[test]
    fn rejects_duplicate_keys_at_the_second_key() {
        let text = r#"{"Effect":"Allow","Effect":"Deny"}"#;
        let (e, offset) = parse(text).unwrap_err();
        assert_eq!(e, JsonError::DuplicateKey("Effect".into()));
        assert_eq!(offset, 18);
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(err(""), JsonError::UnexpectedEnd);
        assert_eq!(err("{"), JsonError::UnexpectedEnd);
        assert_eq!(err("[1,]"), JsonError::UnexpectedCharacter(']'));
        assert_eq!(err("{\"a\" 1}"), JsonError::ExpectedColon);
        assert_eq!(err("{1:2}"), JsonError::ExpectedKey);
        assert_eq!(err("[1 2]"), JsonError::ExpectedCommaOrEnd);
        assert_eq!(err("\"abc"), JsonError::UnterminatedString);
        assert_eq!(err("\"a\u{1}\""), JsonError::ControlCharacterInString);
        assert_eq!(err(r#""\x""#), JsonError::InvalidEscape);
        assert_eq!(err(r#""\ud800""#), JsonError::LoneSurrogate);
        assert_eq!(err(r#""\udc00""#), JsonError::LoneSurrogate);
        assert_eq!(err("01"), JsonError::TrailingCharacters);
        assert_eq!(err("1."), JsonError::InvalidNumber);
        assert_eq!(err("-"), JsonError::InvalidNumber);
        assert_eq!(err("1e"), JsonError::InvalidNumber);
        assert_eq!(err("tru"), JsonError::UnexpectedCharacter('t'));
        assert_eq!(err("{} {}"), JsonError::TrailingCharacters);
    }

    #[test]
    fn bounds_nesting_depth() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(err(&deep), JsonError::TooDeep { limit: MAX_DEPTH });
        // Far deeper input fails the same way instead of overflowing the stack.
        assert_eq!(
            err(&"[".repeat(1_000_000)),
            JsonError::TooDeep { limit: MAX_DEPTH }
        );
    }

    #[test]
    fn locations_are_one_based_lines_and_character_columns() {
        let text = "{\n  \"é\": x\n}";
        let offset = text.find('x').unwrap();
        assert_eq!(location(text, offset), Location { line: 2, column: 8 });
        assert_eq!(location(text, 0), Location { line: 1, column: 1 });
    }

    /// Converts our tree into serde_json's, for comparison with the oracle.
    fn to_serde(v: &Value) -> serde_json::Value {
        match &v.kind {
            Kind::Null => serde_json::Value::Null,
            Kind::Bool(b) => serde_json::Value::Bool(*b),
            Kind::Number(n) => serde_json::from_str(n).expect("number text is valid JSON"),
            Kind::String(s) => serde_json::Value::String(s.clone()),
            Kind::Array(items) => serde_json::Value::Array(items.iter().map(to_serde).collect()),
            Kind::Object(members) => serde_json::Value::Object(
                members
                    .iter()
                    .map(|m| (m.key.clone(), to_serde(&m.value)))
                    .collect(),
            ),
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            (-1e6f64..1e6).prop_map(|n| serde_json::json!(n)),
            "\\PC{0,12}".prop_map(serde_json::Value::String),
            any::<String>().prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-zA-Z\"\\\\]{0,6}", inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Whatever serde_json writes (compact or pretty), we read back to the same value.
        #[test]
        fn reads_what_serde_json_writes(v in json_value(), pretty in proptest::prelude::any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.unwrap();
            let ours = parse(&text).map_err(|(e, at)| proptest::test_runner::TestCaseError::fail(format!("{e} at {at}: {text}")))?;
            proptest::prop_assert_eq!(to_serde(&ours), v);
        }

        /// On arbitrary text we never accept what serde_json rejects, and agree on the value.
        #[test]
        fn never_more_lenient_than_serde_json(text in "[\\[\\]{}\",:0-9eE.+\\-a-z\\\\ \n\t]{0,40}") {
            if let Ok(ours) = parse(&text) {
                let theirs: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("we accepted, serde_json says {e}: {text:?}")))?;
                proptest::prop_assert_eq!(to_serde(&ours), theirs);
            }
        }
    }
}
