//! Errors raised while reading a policy document, naming the field and line at fault.

use std::fmt;

/// A 1-based line and column (in characters) in a policy document's source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a policy document was refused, with where in the document the problem is.
///
/// The message names the field (`Statement[1].Action[0]`) and the line and column, and
/// suggests a fix where one is obvious, for example:
///
/// ```text
/// Statement[0].Action[1] (line 6, column 18): unknown action "iot:Publsh" (did you mean "iot:Publish"?)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    kind: ErrorKind,
    path: String,
    location: Option<Location>,
}

impl PolicyError {
    pub(crate) fn new(
        kind: ErrorKind,
        path: impl Into<String>,
        location: Option<Location>,
    ) -> Self {
        Self {
            kind,
            path: path.into(),
            location,
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The field at fault as a path such as `Statement[1].Resource[0]`; empty for the whole
    /// document (size limit, JSON syntax).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Line and column of the offending value, when the error concerns one place.
    pub fn location(&self) -> Option<Location> {
        self.location
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), self.location) {
            (false, Some(loc)) => write!(f, "{} ({loc}): {}", self.path, self.kind),
            (false, None) => write!(f, "{}: {}", self.path, self.kind),
            (true, Some(loc)) => write!(f, "{loc}: {}", self.kind),
            (true, None) => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

/// Renders an optional "did you mean" suffix.
struct Suggest(Option<&'static str>);

impl fmt::Display for Suggest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean \"{s}\"?)"),
            None => Ok(()),
        }
    }
}

/// The kinds of problem a policy document can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The document has more non-whitespace characters than the limit (AWS IoT: 2048).
    #[error(
        "policy document has {characters} characters excluding whitespace, the limit is {limit}; split it into several policies"
    )]
    TooManyCharacters {
        /// Non-whitespace characters in the document.
        characters: usize,
        /// The limit, [`crate::MAX_DOCUMENT_CHARACTERS`].
        limit: usize,
    },
    /// The document is larger in bytes (whitespace included) than the limit.
    #[error("policy document is {bytes} bytes long, the limit is {limit} bytes")]
    TooManyBytes {
        /// Bytes in the document.
        bytes: usize,
        /// The limit, [`crate::MAX_DOCUMENT_BYTES`].
        limit: usize,
    },
    /// The document is not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(#[source] JsonError),
    /// A field holds the wrong kind of JSON value.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the field must hold.
        expected: &'static str,
        /// What it holds.
        found: &'static str,
    },
    /// A required field is absent.
    #[error("missing required field \"{0}\"")]
    MissingField(&'static str),
    /// A field that policies do not have (field names are case-sensitive).
    #[error("unknown field \"{field}\"{}", Suggest(*.suggestion))]
    UnknownField {
        /// The field as written.
        field: String,
        /// The intended field name when it differs only in case.
        suggestion: Option<&'static str>,
    },
    /// An IAM element that ironroot deliberately does not implement.
    #[error(
        "\"{0}\" is not supported in ironroot policies; list the actions and resources to allow or deny explicitly"
    )]
    UnsupportedElement(&'static str),
    /// `Version` is not `"2012-10-17"`.
    #[error(
        "unsupported policy version \"{0}\"; use \"2012-10-17\" (the only version with policy variables)"
    )]
    UnsupportedVersion(String),
    /// `Statement` is an empty array.
    #[error("the policy has no statements; add at least one statement")]
    EmptyStatementList,
    /// `Action` or `Resource` is an empty array.
    #[error("\"{0}\" is an empty list; name at least one entry")]
    EmptyList(&'static str),
    /// `Effect` is neither `Allow` nor `Deny`.
    #[error("invalid effect \"{effect}\"; use \"Allow\" or \"Deny\"{}", Suggest(*.suggestion))]
    BadEffect {
        /// The effect as written.
        effect: String,
        /// The intended effect when it differs only in case.
        suggestion: Option<&'static str>,
    },
    /// An action that does not exist.
    #[error(
        "unknown action \"{action}\"{}; MQTT actions are iot:Connect, iot:Publish, iot:Subscribe, iot:Receive, iot:RetainPublish",
        Suggest(*.suggestion)
    )]
    UnknownAction {
        /// The action as written.
        action: String,
        /// The closest known action, if any is close.
        suggestion: Option<&'static str>,
    },
    /// An AWS IoT action outside MQTT messaging (shadows, jobs, retained-message APIs).
    #[error(
        "action \"{0}\" is an AWS IoT action that ironroot does not implement; only MQTT actions (iot:Connect, iot:Publish, iot:Subscribe, iot:Receive, iot:RetainPublish) are supported"
    )]
    UnsupportedAction(String),
    /// An action wildcard that matches none of the MQTT actions.
    #[error("action pattern \"{0}\" matches no MQTT action")]
    ActionPatternMatchesNothing(String),
    /// A resource that is not a valid `client/`, `topic/` or `topicfilter/` resource.
    #[error("bad resource \"{resource}\": {problem}")]
    BadResource {
        /// The resource as written.
        resource: String,
        /// What is wrong with it.
        problem: ResourceProblem,
    },
    /// A `${...}` policy variable that is malformed or unknown.
    #[error("bad policy variable in \"{text}\": {problem}")]
    BadVariable {
        /// The string that contains the variable.
        text: String,
        /// What is wrong with it.
        problem: VariableProblem,
    },
    /// A condition operator ironroot does not evaluate (it never ignores one).
    #[error(
        "unsupported condition operator \"{0}\"; supported: StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike, StringNotLike (each also with IfExists), Bool, Null"
    )]
    UnsupportedConditionOperator(String),
    /// A condition key ironroot cannot supply.
    #[error(
        "unsupported condition key \"{0}\"; supported: iot:ClientId, iot:Connection.Thing.ThingName, iot:Connection.Thing.IsAttached, iot:Connection.Thing.Attributes[name], iot:Certificate.Subject.CommonName, ironroot:Group"
    )]
    UnsupportedConditionKey(String),
    /// A condition value of the wrong form (for example a number, or `Bool` with "yes").
    #[error("bad condition value: {0}")]
    BadConditionValue(&'static str),
}

/// What is wrong with a resource string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceProblem {
    /// An `arn:` resource without the six colon-separated fields.
    #[error(
        "an ARN has the form arn:aws:iot:REGION:ACCOUNT:TYPE/NAME (for example arn:aws:iot:*:*:topic/devices/*)"
    )]
    MalformedArn,
    /// An ARN for another service than `iot`.
    #[error("the ARN names service \"{0}\"; only \"iot\" resources exist here")]
    WrongService(String),
    /// A resource type other than client, topic, topicfilter.
    #[error("resource type \"{0}\" is not an MQTT resource; use client/, topic/ or topicfilter/")]
    UnsupportedType(String),
    /// No `TYPE/` prefix.
    #[error("expected client/NAME, topic/NAME, topicfilter/NAME, an ARN, or \"*\"")]
    MissingType,
    /// Nothing after `TYPE/`.
    #[error("the name after the resource type is empty")]
    EmptyName,
    /// A policy variable in the region, account or type, where it cannot mean anything.
    #[error("policy variables may only appear in the name part, after TYPE/")]
    VariableOutsideName,
}

/// What is wrong with a `${...}` policy variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VariableProblem {
    /// `${` without a closing `}`.
    #[error("\"${{\" is not closed by \"}}\" (write ${{$}} for a literal '$')")]
    Unterminated,
    /// `${}`.
    #[error("empty variable name")]
    Empty,
    /// `${name, 'default'}`: IAM default values are not supported.
    #[error("default values (\"${{name, 'default'}}\") are not supported")]
    DefaultValue,
    /// A variable name that does not exist.
    #[error(
        "unknown variable \"{name}\"{}; known: iot:ClientId, iot:Connection.Thing.ThingName, iot:Connection.Thing.IsAttached, iot:Connection.Thing.Attributes[name], iot:Certificate.Subject.CommonName, ironroot:Group",
        Suggest(*.suggestion)
    )]
    Unknown {
        /// The name as written.
        name: String,
        /// The intended name when it differs only in case.
        suggestion: Option<&'static str>,
    },
    /// An AWS variable ironroot has no value for.
    #[error("variable \"{0}\" exists in AWS IoT but ironroot has no value for it")]
    Unsupported(String),
    /// `Attributes[...]` with an empty or invalid attribute name.
    #[error("attribute name \"{0}\" is invalid (allowed: letters, digits and _.,@/:#-)")]
    BadAttributeName(String),
}

/// What is wrong with the JSON text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The text ends in the middle of a value.
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A character that cannot start or continue a value here.
    #[error("unexpected character {0:?}")]
    UnexpectedCharacter(char),
    /// An object member that does not start with a string key.
    #[error("expected a string key")]
    ExpectedKey,
    /// A key not followed by `:`.
    #[error("expected ':' after the key")]
    ExpectedColon,
    /// An element not followed by `,` or the closing bracket.
    #[error("expected ',' or a closing bracket")]
    ExpectedCommaOrEnd,
    /// A string without its closing quote.
    #[error("unterminated string")]
    UnterminatedString,
    /// A raw control character inside a string.
    #[error("control character in string (escape it)")]
    ControlCharacterInString,
    /// A backslash escape that JSON does not define.
    #[error("invalid escape sequence")]
    InvalidEscape,
    /// A `\u` escape of half a surrogate pair.
    #[error("unpaired UTF-16 surrogate in \\u escape")]
    LoneSurrogate,
    /// A malformed number.
    #[error("invalid number")]
    InvalidNumber,
    /// Text after the document's closing brace.
    #[error("trailing characters after the document")]
    TrailingCharacters,
    /// The same key twice in one object (ambiguous: parsers disagree on which one wins).
    #[error("duplicate key \"{0}\" (each field may appear once)")]
    DuplicateKey(String),
    /// Arrays and objects nested deeper than any policy needs.
    #[error("nesting deeper than {limit} levels")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
}
