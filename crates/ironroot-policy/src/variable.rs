//! Policy variables (`${iot:ClientId}`) and the template strings that contain them.
//!
//! A template is a resource name or condition value split into literal text, IAM wildcards
//! (`*` any run of characters, `?` one character) and variables. Variables are replaced by the
//! connection's values when a policy is compiled for a connection
//! ([`crate::Authorizer::compile`]); a value is always inserted as literal text, so a client id
//! such as `*` or `a?` cannot act as a wildcard.

use std::borrow::Cow;
use std::fmt;

use crate::error::VariableProblem;

/// A policy variable, written `${name}` in a resource or condition value and usable as a
/// condition key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Variable {
    /// `iot:ClientId`: the MQTT client identifier of the connection.
    ClientId,
    /// `iot:Connection.Thing.ThingName`: the registry name of the device whose certificate
    /// authenticated the connection. Absent when the certificate belongs to no device.
    ThingName,
    /// `iot:Connection.Thing.IsAttached`: `"true"` when the certificate belongs to a device
    /// of the registry, otherwise `"false"`. Always present.
    ThingIsAttached,
    /// `iot:Connection.Thing.Attributes[name]`: a registry attribute of the device. Absent
    /// when the device has no such attribute.
    ThingAttribute(String),
    /// `iot:Certificate.Subject.CommonName`: the CN of the client certificate's subject.
    CertificateCommonName,
    /// `ironroot:Group`: the device group through which the policy is attached. Absent when
    /// the policy is attached directly to the device. (AWS IoT has no such variable; ironroot
    /// adds it so one group policy can address `groups/${ironroot:Group}/...`.)
    Group,
}

impl Variable {
    /// The variable's name as written in a policy, without `${` `}`.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Variable::ClientId => Cow::Borrowed("iot:ClientId"),
            Variable::ThingName => Cow::Borrowed("iot:Connection.Thing.ThingName"),
            Variable::ThingIsAttached => Cow::Borrowed("iot:Connection.Thing.IsAttached"),
            Variable::ThingAttribute(a) => {
                Cow::Owned(format!("iot:Connection.Thing.Attributes[{a}]"))
            }
            Variable::CertificateCommonName => Cow::Borrowed("iot:Certificate.Subject.CommonName"),
            Variable::Group => Cow::Borrowed("ironroot:Group"),
        }
    }

    /// Whether every connection has a value for this variable. Statements whose resources use
    /// a variable that may be absent do not apply to connections without the value — which
    /// for a `Deny` statement means it denies nothing (AWS IoT behaves the same).
    pub fn always_present(&self) -> bool {
        matches!(self, Variable::ClientId | Variable::ThingIsAttached)
    }

    /// Parses a variable name (the text between `${` and `}`).
    pub(crate) fn parse(name: &str) -> Result<Self, VariableProblem> {
        const FIXED: [(&str, Variable); 5] = [
            ("iot:ClientId", Variable::ClientId),
            ("iot:Connection.Thing.ThingName", Variable::ThingName),
            ("iot:Connection.Thing.IsAttached", Variable::ThingIsAttached),
            (
                "iot:Certificate.Subject.CommonName",
                Variable::CertificateCommonName,
            ),
            ("ironroot:Group", Variable::Group),
        ];
        const ATTR: &str = "iot:Connection.Thing.Attributes[";
        if name.trim().is_empty() {
            return Err(VariableProblem::Empty);
        }
        if name.contains(',') && !name.starts_with(ATTR) {
            return Err(VariableProblem::DefaultValue);
        }
        if let Some((_, v)) = FIXED.iter().find(|(n, _)| *n == name) {
            return Ok(v.clone());
        }
        if let Some(rest) = name.strip_prefix(ATTR) {
            let Some(attr) = rest.strip_suffix(']') else {
                return Err(VariableProblem::BadAttributeName(rest.to_owned()));
            };
            if !valid_attribute_name(attr) {
                return Err(VariableProblem::BadAttributeName(attr.to_owned()));
            }
            return Ok(Variable::ThingAttribute(attr.to_owned()));
        }
        // A name that differs only in case is almost certainly a typo: say so.
        let lower = name.to_ascii_lowercase();
        if let Some((n, _)) = FIXED.iter().find(|(n, _)| n.to_ascii_lowercase() == lower) {
            return Err(VariableProblem::Unknown {
                name: name.to_owned(),
                suggestion: Some(n),
            });
        }
        if lower.starts_with(&ATTR.to_ascii_lowercase()) {
            return Err(VariableProblem::Unknown {
                name: name.to_owned(),
                suggestion: Some("iot:Connection.Thing.Attributes[name]"),
            });
        }
        if name.starts_with("iot:") || name.starts_with("aws:") {
            return Err(VariableProblem::Unsupported(name.to_owned()));
        }
        Err(VariableProblem::Unknown {
            name: name.to_owned(),
            suggestion: None,
        })
    }
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.name())
    }
}

/// AWS thing attribute names: 1 to 128 of `[a-zA-Z0-9_.,@/:#-]`.
fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.,@/:#-".contains(&b))
}

/// One piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Text matched as is.
    Literal(String),
    /// `*`: any run of characters, including none and including `/`.
    AnySeq,
    /// `?`: exactly one character.
    AnyOne,
    /// A variable, replaced by its value as literal text.
    Var(Variable),
}

/// Splits `text` into segments. With `wildcards` false, `*` and `?` are literal (as in
/// `StringEquals` values). `${*}`, `${?}` and `${$}` (also written `$(*)`, `$(?)`, `$($)` in
/// the AWS IoT guide) stand for a literal `*`, `?` and `$`; a `$` not followed by `{` is
/// literal, so `$aws/things/...` topics need no escaping.
pub(crate) fn parse_template(text: &str, wildcards: bool) -> Result<Vec<Segment>, VariableProblem> {
    let mut out: Vec<Segment> = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let special = ["${*}", "${?}", "${$}", "$(*)", "$(?)", "$($)"]
            .iter()
            .find(|s| rest.starts_with(**s));
        if let Some(s) = special {
            lit.push(s.as_bytes()[2] as char);
            rest = &rest[4..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or(VariableProblem::Unterminated)?;
            let var = Variable::parse(&after[..end])?;
            flush(&mut out, &mut lit);
            out.push(Segment::Var(var));
            rest = &after[end + 1..];
            continue;
        }
        match c {
            '*' if wildcards => {
                flush(&mut out, &mut lit);
                out.push(Segment::AnySeq);
            }
            '?' if wildcards => {
                flush(&mut out, &mut lit);
                out.push(Segment::AnyOne);
            }
            _ => lit.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut out, &mut lit);
    Ok(out)
}

fn flush(out: &mut Vec<Segment>, lit: &mut String) {
    if !lit.is_empty() {
        out.push(Segment::Literal(std::mem::take(lit)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::*;

    fn lit(s: &str) -> Segment {
        Literal(s.to_owned())
    }

    #[test]
    fn splits_literals_wildcards_and_variables() {
        assert_eq!(
            parse_template("devices/${iot:ClientId}/*/x?", true).unwrap(),
            vec![
                lit("devices/"),
                Var(Variable::ClientId),
                lit("/"),
                AnySeq,
                lit("/x"),
                AnyOne
            ]
        );
        assert_eq!(
            parse_template("a*b?", false).unwrap(),
            vec![lit("a*b?")],
            "wildcards are literal in StringEquals values"
        );
    }

    #[test]
    fn special_characters_and_lone_dollars_are_literal() {
        assert_eq!(
            parse_template("a${*}b$(?)c${$}d$aws/x", true).unwrap(),
            vec![lit("a*b?c$d$aws/x")]
        );
    }

    #[test]
    fn parses_all_known_variables() {
        for (name, v) in [
            ("iot:ClientId", Variable::ClientId),
            ("iot:Connection.Thing.ThingName", Variable::ThingName),
            ("iot:Connection.Thing.IsAttached", Variable::ThingIsAttached),
            (
                "iot:Certificate.Subject.CommonName",
                Variable::CertificateCommonName,
            ),
            ("ironroot:Group", Variable::Group),
            (
                "iot:Connection.Thing.Attributes[room-1]",
                Variable::ThingAttribute("room-1".into()),
            ),
        ] {
            assert_eq!(Variable::parse(name).unwrap(), v);
            assert_eq!(v.name(), name, "name() round-trips");
        }
    }

    #[test]
    fn rejects_bad_variables_with_specific_problems() {
        assert_eq!(
            parse_template("x/${iot:ClientId", true),
            Err(VariableProblem::Unterminated)
        );
        assert_eq!(parse_template("${}", true), Err(VariableProblem::Empty));
        assert_eq!(
            parse_template("${iot:ClientId, 'x'}", true),
            Err(VariableProblem::DefaultValue)
        );
        assert_eq!(
            Variable::parse("iot:clientid"),
            Err(VariableProblem::Unknown {
                name: "iot:clientid".into(),
                suggestion: Some("iot:ClientId")
            })
        );
        assert_eq!(
            Variable::parse("iot:Connection.Thing.ThingTypeName"),
            Err(VariableProblem::Unsupported(
                "iot:Connection.Thing.ThingTypeName".into()
            ))
        );
        assert_eq!(
            Variable::parse("iot:Connection.Thing.Attributes[]"),
            Err(VariableProblem::BadAttributeName(String::new()))
        );
        assert_eq!(
            Variable::parse("iot:Connection.Thing.Attributes[a b]"),
            Err(VariableProblem::BadAttributeName("a b".into()))
        );
        assert!(matches!(
            Variable::parse("foo"),
            Err(VariableProblem::Unknown {
                suggestion: None,
                ..
            })
        ));
    }
}
