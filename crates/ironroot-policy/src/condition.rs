//! The `Condition` element: a small, fully evaluated subset of IAM conditions.
//!
//! Every supported key is a property of the connection (client id, device, certificate,
//! attachment group), so conditions are decided once when a policy is compiled for a
//! connection and cost nothing per message. Operators and keys outside the subset are refused
//! when the policy is uploaded — a condition is never silently ignored.
//!
//! Semantics follow IAM: all operators of a block must hold, all keys of an operator must
//! hold, and a key holds when its value matches any listed value. A key the connection lacks
//! fails positive operators, satisfies negated ones (`StringNotEquals`, `StringNotLike`) and
//! satisfies any `...IfExists` operator. A listed value that uses a variable the connection
//! lacks makes the whole statement inapplicable.

use crate::error::ErrorKind;
use crate::glob::{Matcher, Token};
use crate::variable::{Segment, Variable, parse_template};

/// The comparison an operator performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    Bool,
    Null,
}

impl Op {
    fn parse(name: &str) -> Option<(Op, bool)> {
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let op = match base {
            "StringEquals" => Op::StringEquals,
            "StringNotEquals" => Op::StringNotEquals,
            "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
            "StringLike" => Op::StringLike,
            "StringNotLike" => Op::StringNotLike,
            "Bool" => Op::Bool,
            "Null" if !if_exists => Op::Null,
            _ => return None,
        };
        Some((op, if_exists))
    }

    fn negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals | Op::StringNotEqualsIgnoreCase | Op::StringNotLike
        )
    }
}

/// One `operator: { key: values }` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    op: Op,
    if_exists: bool,
    key: Variable,
    values: Vec<Vec<Segment>>,
}

/// A parsed `Condition` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Condition {
    clauses: Vec<Clause>,
}

/// A raw condition value as found in the JSON.
pub(crate) enum RawValue<'a> {
    Str(&'a str),
    Bool(bool),
}

impl Condition {
    /// Starts an empty condition (holds for everyone).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `operator: { key: values }`. Errors name the operator, key or value at fault.
    pub(crate) fn add(
        &mut self,
        operator: &str,
        key: &str,
        values: &[RawValue<'_>],
    ) -> Result<(), ErrorKind> {
        let (op, if_exists) = Op::parse(operator)
            .ok_or_else(|| ErrorKind::UnsupportedConditionOperator(operator.to_owned()))?;
        let key = parse_key(key)?;
        if values.is_empty() {
            return Err(ErrorKind::EmptyList("condition values"));
        }
        let mut parsed = Vec::with_capacity(values.len());
        for v in values {
            parsed.push(match (op, v) {
                (Op::Bool | Op::Null, RawValue::Bool(b)) => {
                    vec![Segment::Literal(b.to_string())]
                }
                (Op::Bool | Op::Null, RawValue::Str(s)) => {
                    let lower = s.to_ascii_lowercase();
                    if lower != "true" && lower != "false" {
                        return Err(ErrorKind::BadConditionValue(
                            "Bool and Null take \"true\" or \"false\"",
                        ));
                    }
                    vec![Segment::Literal(lower)]
                }
                (_, RawValue::Bool(_)) => {
                    return Err(ErrorKind::BadConditionValue(
                        "string operators take strings; write \"true\" in quotes",
                    ));
                }
                (_, RawValue::Str(s)) => {
                    parse_template(s, matches!(op, Op::StringLike | Op::StringNotLike)).map_err(
                        |problem| ErrorKind::BadVariable {
                            text: (*s).to_owned(),
                            problem,
                        },
                    )?
                }
            });
        }
        self.clauses.push(Clause {
            op,
            if_exists,
            key,
            values: parsed,
        });
        Ok(())
    }

    /// Whether the block has no test at all.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Every variable the block reads, as key or inside a value.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.clauses.iter().flat_map(|c| {
            std::iter::once(&c.key).chain(c.values.iter().flatten().filter_map(|s| match s {
                Segment::Var(v) => Some(v),
                _ => None,
            }))
        })
    }

    /// Evaluates the block. `None` means a value used a variable the connection lacks, which
    /// makes the statement inapplicable.
    pub(crate) fn evaluate<'v>(
        &self,
        lookup: &impl Fn(&Variable) -> Option<&'v str>,
    ) -> Option<bool> {
        for clause in &self.clauses {
            if !clause.evaluate(lookup)? {
                return Some(false);
            }
        }
        Some(true)
    }
}

impl Clause {
    fn evaluate<'v>(&self, lookup: &impl Fn(&Variable) -> Option<&'v str>) -> Option<bool> {
        let actual = lookup(&self.key);
        if self.op == Op::Null {
            // "true": the key must be absent; "false": it must be present.
            let want_absent = self
                .values
                .iter()
                .any(|v| matches!(v.as_slice(), [Segment::Literal(l)] if l == "true"));
            let want_present = self
                .values
                .iter()
                .any(|v| matches!(v.as_slice(), [Segment::Literal(l)] if l == "false"));
            return Some(if actual.is_some() {
                want_present
            } else {
                want_absent
            });
        }
        let Some(actual) = actual else {
            return Some(self.if_exists || self.op.negated());
        };
        let mut any = false;
        for value in &self.values {
            if self.value_matches(value, actual, lookup)? {
                any = true;
                break;
            }
        }
        Some(any != self.op.negated())
    }

    fn value_matches<'v>(
        &self,
        value: &[Segment],
        actual: &str,
        lookup: &impl Fn(&Variable) -> Option<&'v str>,
    ) -> Option<bool> {
        // Substitute variables as literal text (never as wildcards).
        let mut tokens = Vec::with_capacity(value.len());
        for s in value {
            tokens.push(match s {
                Segment::Literal(l) => Token::Lit(l.clone().into_boxed_str()),
                Segment::AnySeq => Token::AnySeq,
                Segment::AnyOne => Token::AnyOne,
                Segment::Var(v) => Token::Lit(lookup(v)?.into()),
            });
        }
        Some(match self.op {
            Op::StringEquals | Op::StringNotEquals | Op::StringLike | Op::StringNotLike => {
                Matcher::new(tokens).matches(actual)
            }
            Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase => {
                let lowered = tokens
                    .into_iter()
                    .map(|t| match t {
                        Token::Lit(l) => Token::Lit(l.to_lowercase().into_boxed_str()),
                        other => other,
                    })
                    .collect();
                Matcher::new(lowered).matches(&actual.to_lowercase())
            }
            Op::Bool => Matcher::new(tokens).matches(&actual.to_ascii_lowercase()),
            Op::Null => false,
        })
    }
}

/// Condition keys are case-insensitive in IAM; attribute names inside `[...]` are not.
fn parse_key(key: &str) -> Result<Variable, ErrorKind> {
    use crate::error::VariableProblem;
    match Variable::parse(key) {
        Ok(v) => Ok(v),
        Err(VariableProblem::Unknown {
            suggestion: Some(s),
            ..
        }) if !s.ends_with("[name]") => {
            Variable::parse(s).map_err(|_| ErrorKind::UnsupportedConditionKey(key.to_owned()))
        }
        Err(_) => {
            let prefix = "iot:connection.thing.attributes[";
            if key.to_ascii_lowercase().starts_with(prefix) {
                let attr = &key[prefix.len()..];
                let canonical = format!("iot:Connection.Thing.Attributes[{attr}");
                return Variable::parse(&canonical)
                    .map_err(|_| ErrorKind::UnsupportedConditionKey(key.to_owned()));
            }
            Err(ErrorKind::UnsupportedConditionKey(key.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(op: &str, key: &str, values: &[&str]) -> Condition {
        let mut c = Condition::new();
        let raw: Vec<RawValue<'_>> = values.iter().map(|v| RawValue::Str(v)).collect();
        c.add(op, key, &raw).unwrap();
        c
    }

    fn eval(c: &Condition, vars: &[(Variable, &'static str)]) -> Option<bool> {
        let lookup = |v: &Variable| vars.iter().find(|(k, _)| k == v).map(|(_, x)| *x);
        c.evaluate(&lookup)
    }

    #[test]
    fn string_operators() {
        let id = [(Variable::ClientId, "dev-1")];
        assert_eq!(
            eval(&cond("StringEquals", "iot:ClientId", &["dev-1"]), &id),
            Some(true)
        );
        assert_eq!(
            eval(&cond("StringEquals", "iot:ClientId", &["dev-*"]), &id),
            Some(false)
        );
        assert_eq!(
            eval(&cond("StringLike", "iot:ClientId", &["dev-*"]), &id),
            Some(true)
        );
        assert_eq!(
            eval(&cond("StringNotLike", "iot:ClientId", &["dev-*"]), &id),
            Some(false)
        );
        assert_eq!(
            eval(&cond("StringNotEquals", "iot:ClientId", &["a", "b"]), &id),
            Some(true)
        );
        assert_eq!(
            eval(
                &cond("StringEqualsIgnoreCase", "iot:clientid", &["DEV-1"]),
                &id
            ),
            Some(true)
        );
    }

    #[test]
    fn missing_keys_follow_iam() {
        let none: [(Variable, &str); 0] = [];
        let key = "iot:Connection.Thing.Attributes[room]";
        assert_eq!(eval(&cond("StringEquals", key, &["x"]), &none), Some(false));
        assert_eq!(
            eval(&cond("StringNotEquals", key, &["x"]), &none),
            Some(true)
        );
        assert_eq!(
            eval(&cond("StringEqualsIfExists", key, &["x"]), &none),
            Some(true)
        );
        assert_eq!(eval(&cond("Null", key, &["true"]), &none), Some(true));
        assert_eq!(eval(&cond("Null", key, &["false"]), &none), Some(false));
    }

    #[test]
    fn variables_in_values_are_literal_and_missing_ones_void_the_statement() {
        let c = cond(
            "StringLike",
            "iot:ClientId",
            &["${iot:Connection.Thing.ThingName}"],
        );
        // A thing name of `*` must not act as a wildcard.
        assert_eq!(
            eval(
                &c,
                &[(Variable::ClientId, "dev-1"), (Variable::ThingName, "*")]
            ),
            Some(false)
        );
        assert_eq!(
            eval(
                &c,
                &[
                    (Variable::ClientId, "dev-1"),
                    (Variable::ThingName, "dev-1")
                ]
            ),
            Some(true)
        );
        assert_eq!(eval(&c, &[(Variable::ClientId, "dev-1")]), None);
    }

    #[test]
    fn bool_operator() {
        let c = cond("Bool", "iot:Connection.Thing.IsAttached", &["TRUE"]);
        assert_eq!(eval(&c, &[(Variable::ThingIsAttached, "true")]), Some(true));
        assert_eq!(
            eval(&c, &[(Variable::ThingIsAttached, "false")]),
            Some(false)
        );
        let mut c = Condition::new();
        assert!(matches!(
            c.add("Bool", "iot:ClientId", &[RawValue::Str("yes")]),
            Err(ErrorKind::BadConditionValue(_))
        ));
    }

    #[test]
    fn refuses_unsupported_operators_and_keys() {
        let mut c = Condition::new();
        for op in [
            "IpAddress",
            "NumericEquals",
            "ForAnyValue:StringEquals",
            "NullIfExists",
        ] {
            assert_eq!(
                c.add(op, "iot:ClientId", &[RawValue::Str("x")]),
                Err(ErrorKind::UnsupportedConditionOperator(op.into()))
            );
        }
        assert_eq!(
            c.add("StringEquals", "aws:SourceIp", &[RawValue::Str("x")]),
            Err(ErrorKind::UnsupportedConditionKey("aws:SourceIp".into()))
        );
        assert_eq!(
            c.add("StringEquals", "iot:ClientId", &[]),
            Err(ErrorKind::EmptyList("condition values"))
        );
        assert!(c.is_empty());
    }
}
