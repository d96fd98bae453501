//! Policy documents: reading and validating the JSON text.

use crate::action::{ActionSet, parse_action, union_all};
use crate::condition::{Condition, RawValue};
use crate::error::{ErrorKind, Location, PolicyError};
use crate::json::{self, Kind, Member, Value};
use crate::resource::Resource;

/// Most characters a policy may have, not counting whitespace (the AWS IoT limit).
pub const MAX_DOCUMENT_CHARACTERS: usize = 2048;

/// Most bytes a policy may have, whitespace included (bounds parsing work on padded input).
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024;

/// The only accepted `Version`.
pub const POLICY_VERSION: &str = "2012-10-17";

/// Whether a statement grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Grants the listed actions on the listed resources, unless a `Deny` matches.
    Allow,
    /// Refuses the listed actions on the listed resources, whatever any `Allow` says.
    Deny,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) actions: ActionSet,
    pub(crate) action_texts: Vec<String>,
    pub(crate) resources: Vec<(Resource, Location)>,
    pub(crate) condition: Condition,
    pub(crate) location: Location,
}

impl Statement {
    /// The optional `Sid` (statement id).
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// `Allow` or `Deny`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The actions after wildcard expansion.
    pub fn actions(&self) -> ActionSet {
        self.actions
    }

    /// The actions as written (`iot:*`, `iot:Publish`).
    pub fn action_texts(&self) -> &[String] {
        &self.action_texts
    }

    /// The resources.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.resources.iter().map(|(r, _)| r)
    }

    /// The resources with where each is written.
    pub fn resources_with_locations(&self) -> &[(Resource, Location)] {
        &self.resources
    }

    /// The condition block (empty when the statement has none).
    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// Where the statement starts in the document.
    pub fn location(&self) -> Location {
        self.location
    }
}

/// A validated AWS IoT-style policy document.
///
/// ```
/// use ironroot_policy::PolicyDocument;
///
/// let doc = PolicyDocument::parse(r#"{
///   "Version": "2012-10-17",
///   "Statement": {
///     "Effect": "Allow",
///     "Action": "iot:Publish",
///     "Resource": "topic/devices/${iot:Connection.Thing.ThingName}/telemetry"
///   }
/// }"#)?;
/// assert_eq!(doc.statements().len(), 1);
/// # Ok::<(), ironroot_policy::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    statements: Vec<Statement>,
}

impl PolicyDocument {
    /// Parses and validates a policy. Errors carry the field path and line of the problem.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(PolicyError::new(
                ErrorKind::TooManyBytes {
                    bytes: text.len(),
                    limit: MAX_DOCUMENT_BYTES,
                },
                "",
                None,
            ));
        }
        let characters = text.chars().filter(|c| !c.is_whitespace()).count();
        if characters > MAX_DOCUMENT_CHARACTERS {
            return Err(PolicyError::new(
                ErrorKind::TooManyCharacters {
                    characters,
                    limit: MAX_DOCUMENT_CHARACTERS,
                },
                "",
                None,
            ));
        }
        let root = json::parse(text).map_err(|(e, offset)| {
            PolicyError::new(ErrorKind::Json(e), "", Some(json::location(text, offset)))
        })?;
        Reader { text }.document(&root)
    }

    /// Parses policy bytes (for example a file's contents), refusing invalid UTF-8.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, PolicyError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(PolicyError::new(
                ErrorKind::TooManyBytes {
                    bytes: bytes.len(),
                    limit: MAX_DOCUMENT_BYTES,
                },
                "",
                None,
            ));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse(text),
            Err(e) => {
                let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
                Err(PolicyError::new(
                    ErrorKind::Json(crate::error::JsonError::UnexpectedCharacter(
                        char::REPLACEMENT_CHARACTER,
                    )),
                    "",
                    Some(json::location(valid, valid.len())),
                ))
            }
        }
    }

    /// The statements in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

/// Walks the JSON tree, turning it into a document or a located error.
struct Reader<'t> {
    text: &'t str,
}

type Res<T> = Result<T, PolicyError>;

impl Reader<'_> {
    fn err(&self, kind: ErrorKind, path: &str, offset: usize) -> PolicyError {
        PolicyError::new(kind, path, Some(json::location(self.text, offset)))
    }

    fn object<'v>(&self, v: &'v Value, path: &str) -> Res<&'v [Member]> {
        match &v.kind {
            Kind::Object(m) => Ok(m),
            other => Err(self.wrong_type("an object", other, path, v.offset)),
        }
    }

    fn string<'v>(&self, v: &'v Value, path: &str) -> Res<&'v str> {
        match &v.kind {
            Kind::String(s) => Ok(s),
            other => Err(self.wrong_type("a string", other, path, v.offset)),
        }
    }

    fn wrong_type(
        &self,
        expected: &'static str,
        found: &Kind,
        path: &str,
        at: usize,
    ) -> PolicyError {
        self.err(
            ErrorKind::WrongType {
                expected,
                found: found.describe(),
            },
            path,
            at,
        )
    }

    /// A field that may be one value or an array of values.
    fn one_or_many<'v>(
        &self,
        v: &'v Value,
        field: &'static str,
        path: &str,
    ) -> Res<Vec<(&'v Value, String)>> {
        match &v.kind {
            Kind::Array(items) if items.is_empty() => {
                Err(self.err(ErrorKind::EmptyList(field), path, v.offset))
            }
            Kind::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, format!("{path}[{i}]")))
                .collect()),
            _ => Ok(vec![(v, path.to_owned())]),
        }
    }

    fn document(&self, root: &Value) -> Res<PolicyDocument> {
        let members = self.object(root, "")?;
        let mut version = None;
        let mut statement = None;
        for m in members {
            match m.key.as_str() {
                "Version" => version = Some(&m.value),
                "Statement" => statement = Some(&m.value),
                "Id" => {
                    self.string(&m.value, "Id")?;
                }
                other => {
                    return Err(self.unknown_field(other, &["Version", "Statement", "Id"], "", m));
                }
            }
        }
        let Some(version) = version else {
            return Err(self.err(ErrorKind::MissingField("Version"), "", root.offset));
        };
        let v = self.string(version, "Version")?;
        if v != POLICY_VERSION {
            return Err(self.err(
                ErrorKind::UnsupportedVersion(v.to_owned()),
                "Version",
                version.offset,
            ));
        }
        let Some(statement) = statement else {
            return Err(self.err(ErrorKind::MissingField("Statement"), "", root.offset));
        };
        let statements = match &statement.kind {
            Kind::Array(items) if items.is_empty() => {
                return Err(self.err(ErrorKind::EmptyStatementList, "Statement", statement.offset));
            }
            Kind::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, s)| self.statement(s, &format!("Statement[{i}]")))
                .collect::<Res<Vec<_>>>()?,
            Kind::Object(_) => vec![self.statement(statement, "Statement")?],
            other => {
                return Err(self.wrong_type(
                    "an object or an array of objects",
                    other,
                    "Statement",
                    statement.offset,
                ));
            }
        };
        Ok(PolicyDocument { statements })
    }

    fn unknown_field(
        &self,
        field: &str,
        known: &[&'static str],
        path: &str,
        m: &Member,
    ) -> PolicyError {
        let path = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        let suggestion = known
            .iter()
            .copied()
            .find(|k| k.eq_ignore_ascii_case(field));
        self.err(
            ErrorKind::UnknownField {
                field: field.to_owned(),
                suggestion,
            },
            &path,
            m.key_offset,
        )
    }

    fn unsupported(&self, element: &'static str, path: &str, m: &Member) -> PolicyError {
        self.err(ErrorKind::UnsupportedElement(element), path, m.key_offset)
    }

    fn statement(&self, v: &Value, path: &str) -> Res<Statement> {
        const KNOWN: [&str; 5] = ["Sid", "Effect", "Action", "Resource", "Condition"];
        let members = self.object(v, path)?;
        let (mut sid, mut effect, mut action, mut resource, mut condition) =
            (None, None, None, None, None);
        for m in members {
            let field_path = format!("{path}.{}", m.key);
            match m.key.as_str() {
                "Sid" => sid = Some(self.string(&m.value, &field_path)?.to_owned()),
                "Effect" => effect = Some(&m.value),
                "Action" => action = Some(&m.value),
                "Resource" => resource = Some(&m.value),
                "Condition" => condition = Some(&m.value),
                "NotAction" => return Err(self.unsupported("NotAction", &field_path, m)),
                "NotResource" => return Err(self.unsupported("NotResource", &field_path, m)),
                "Principal" => return Err(self.unsupported("Principal", &field_path, m)),
                "NotPrincipal" => return Err(self.unsupported("NotPrincipal", &field_path, m)),
                other => return Err(self.unknown_field(other, &KNOWN, path, m)),
            }
        }
        let missing = |f| self.err(ErrorKind::MissingField(f), path, v.offset);
        let effect_v = effect.ok_or_else(|| missing("Effect"))?;
        let effect_path = format!("{path}.Effect");
        let effect = match self.string(effect_v, &effect_path)? {
            "Allow" => Effect::Allow,
            "Deny" => Effect::Deny,
            other => {
                let suggestion = ["Allow", "Deny"]
                    .into_iter()
                    .find(|e| e.eq_ignore_ascii_case(other));
                return Err(self.err(
                    ErrorKind::BadEffect {
                        effect: other.to_owned(),
                        suggestion,
                    },
                    &effect_path,
                    effect_v.offset,
                ));
            }
        };
        let action_v = action.ok_or_else(|| missing("Action"))?;
        let mut sets = Vec::new();
        let mut action_texts = Vec::new();
        for (item, item_path) in self.one_or_many(action_v, "Action", &format!("{path}.Action"))? {
            let text = self.string(item, &item_path)?;
            sets.push(parse_action(text).map_err(|k| self.err(k, &item_path, item.offset))?);
            action_texts.push(text.to_owned());
        }
        let resource_v = resource.ok_or_else(|| missing("Resource"))?;
        let mut resources = Vec::new();
        for (item, item_path) in
            self.one_or_many(resource_v, "Resource", &format!("{path}.Resource"))?
        {
            let text = self.string(item, &item_path)?;
            let r = Resource::parse(text).map_err(|k| self.err(k, &item_path, item.offset))?;
            resources.push((r, json::location(self.text, item.offset)));
        }
        let condition = match condition {
            Some(c) => self.condition(c, &format!("{path}.Condition"))?,
            None => Condition::new(),
        };
        Ok(Statement {
            sid,
            effect,
            actions: union_all(sets),
            action_texts,
            resources,
            condition,
            location: json::location(self.text, v.offset),
        })
    }

    fn condition(&self, v: &Value, path: &str) -> Res<Condition> {
        let mut condition = Condition::new();
        for op in self.object(v, path)? {
            let op_path = format!("{path}.{}", op.key);
            let keys = self.object(&op.value, &op_path)?;
            if keys.is_empty() {
                return Err(self.err(
                    ErrorKind::EmptyList("condition keys"),
                    &op_path,
                    op.value.offset,
                ));
            }
            for key in keys {
                let key_path = format!("{op_path}.{}", key.key);
                let mut raw = Vec::new();
                let items = self.one_or_many(&key.value, "condition values", &key_path)?;
                for (item, item_path) in &items {
                    raw.push(match &item.kind {
                        Kind::String(s) => RawValue::Str(s),
                        Kind::Bool(b) => RawValue::Bool(*b),
                        other => {
                            return Err(self.wrong_type(
                                "a string or a boolean",
                                other,
                                item_path,
                                item.offset,
                            ));
                        }
                    });
                }
                condition.add(&op.key, &key.key, &raw).map_err(|k| {
                    // Operator and key problems point at the key; value problems at the value.
                    let at = match k {
                        ErrorKind::UnsupportedConditionOperator(_) => op.key_offset,
                        ErrorKind::BadConditionValue(_) | ErrorKind::BadVariable { .. } => {
                            key.value.offset
                        }
                        _ => key.key_offset,
                    };
                    self.err(k, &key_path, at)
                })?;
            }
        }
        Ok(condition)
    }
}
