//! `Resource` entries: full ARNs (`arn:aws:iot:REGION:ACCOUNT:topic/...`), the short form
//! (`topic/...`) and `*`, parsed into a resource type and a name template.

use crate::action::ResourceType;
use crate::error::{ErrorKind, ResourceProblem};
use crate::glob;
use crate::variable::{Segment, Variable, parse_template};

/// One parsed entry of a statement's `Resource` list.
///
/// Region and account fields of an ARN are accepted with any value and ignored: an ironroot
/// installation is one account in one place, and ignoring them lets AWS policies be used
/// unchanged. Only the part after the fifth `:` (`topic/devices/*`) decides what matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    text: String,
    /// The type when written literally; `None` when the type itself is a wildcard (`*`,
    /// `arn:aws:iot:*:*:*`), in which case `pattern` covers `TYPE/NAME` as a whole.
    kind: Option<ResourceType>,
    pattern: Vec<Segment>,
}

impl Resource {
    /// Parses a resource string.
    pub(crate) fn parse(text: &str) -> Result<Self, ErrorKind> {
        let bad = |problem| ErrorKind::BadResource {
            resource: text.to_owned(),
            problem,
        };
        let part = if let Some(arn) = text.strip_prefix("arn:") {
            let fields: Vec<&str> = arn.splitn(5, ':').collect();
            let [partition, service, region, account, part] = fields[..] else {
                return Err(bad(ResourceProblem::MalformedArn));
            };
            if partition.is_empty() || service.is_empty() {
                return Err(bad(ResourceProblem::MalformedArn));
            }
            if !glob::simple_match(service, "iot") {
                return Err(bad(ResourceProblem::WrongService(service.to_owned())));
            }
            if [partition, service, region, account]
                .iter()
                .any(|f| f.contains('$'))
            {
                return Err(bad(ResourceProblem::VariableOutsideName));
            }
            part
        } else {
            text
        };
        let template_err = |problem| ErrorKind::BadVariable {
            text: text.to_owned(),
            problem,
        };
        let Some((ty, name)) = part.split_once('/') else {
            // No type prefix: only a pure wildcard such as `*` makes sense.
            if part.contains(['*', '?']) && !part.contains('$') {
                return Ok(Resource {
                    text: text.to_owned(),
                    kind: None,
                    pattern: parse_template(part, true).map_err(template_err)?,
                });
            }
            return Err(bad(ResourceProblem::MissingType));
        };
        if ty.contains('$') {
            return Err(bad(ResourceProblem::VariableOutsideName));
        }
        if ty.contains(['*', '?']) {
            return Ok(Resource {
                text: text.to_owned(),
                kind: None,
                pattern: parse_template(part, true).map_err(template_err)?,
            });
        }
        let kind = ResourceType::from_name(ty)
            .ok_or_else(|| bad(ResourceProblem::UnsupportedType(ty.to_owned())))?;
        if name.is_empty() {
            return Err(bad(ResourceProblem::EmptyName));
        }
        Ok(Resource {
            text: text.to_owned(),
            kind: Some(kind),
            pattern: parse_template(name, true).map_err(template_err)?,
        })
    }

    /// The resource as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The resource type, or `None` when the type is itself a wildcard (`*`).
    pub fn resource_type(&self) -> Option<ResourceType> {
        self.kind
    }

    /// Whether this resource can match a resource of type `ty`: always when the type is
    /// itself a wildcard (decided per request then), otherwise when the types are equal.
    pub fn can_match(&self, ty: ResourceType) -> bool {
        self.kind.is_none_or(|k| k == ty)
    }

    /// The variables used in the name, in order.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.pattern.iter().filter_map(|s| match s {
            Segment::Var(v) => Some(v),
            _ => None,
        })
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(text: &str) -> Option<ResourceType> {
        Resource::parse(text).unwrap().resource_type()
    }

    fn problem(text: &str) -> ResourceProblem {
        match Resource::parse(text) {
            Err(ErrorKind::BadResource { problem, .. }) => problem,
            other => panic!("{text}: expected a bad resource, got {other:?}"),
        }
    }

    #[test]
    fn accepts_arns_short_forms_and_wildcards() {
        assert_eq!(
            kind_of("arn:aws:iot:us-east-1:123456789012:topic/a/b"),
            Some(ResourceType::Topic)
        );
        assert_eq!(
            kind_of("arn:aws:iot:*:*:topicfilter/a/#"),
            Some(ResourceType::TopicFilter)
        );
        assert_eq!(
            kind_of("client/${iot:ClientId}"),
            Some(ResourceType::Client)
        );
        assert_eq!(kind_of("*"), None);
        assert_eq!(kind_of("arn:aws:iot:us-east-1:1:*"), None);
        assert_eq!(
            kind_of("arn:aws-cn:iot:r:a:topic/x:y"),
            Some(ResourceType::Topic)
        );
        let r = Resource::parse("topic/a/${iot:Connection.Thing.ThingName}").unwrap();
        assert_eq!(
            r.variables().collect::<Vec<_>>(),
            vec![&Variable::ThingName]
        );
        assert_eq!(r.as_str(), "topic/a/${iot:Connection.Thing.ThingName}");
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!(
            problem("arn:aws:iot:us-east-1:topic/x"),
            ResourceProblem::MalformedArn
        );
        assert_eq!(
            problem("arn:aws:s3:::bucket/x"),
            ResourceProblem::WrongService("s3".into())
        );
        assert_eq!(
            problem("thing/x"),
            ResourceProblem::UnsupportedType("thing".into())
        );
        assert_eq!(
            problem("Topic/x"),
            ResourceProblem::UnsupportedType("Topic".into())
        );
        assert_eq!(
            problem("devices/x/y"),
            ResourceProblem::UnsupportedType("devices".into())
        );
        assert_eq!(problem("telemetry"), ResourceProblem::MissingType);
        assert_eq!(problem("topic/"), ResourceProblem::EmptyName);
        assert_eq!(
            problem("arn:aws:iot:${iot:ClientId}:1:topic/x"),
            ResourceProblem::VariableOutsideName
        );
        assert_eq!(
            problem("${iot:ClientId}/x"),
            ResourceProblem::VariableOutsideName
        );
        assert!(matches!(
            Resource::parse("topic/${iot:Nope}"),
            Err(ErrorKind::BadVariable { .. })
        ));
    }

    #[test]
    fn wildcard_types_know_what_they_can_match() {
        let any = Resource::parse("*").unwrap();
        assert!(any.can_match(ResourceType::Client) && any.can_match(ResourceType::TopicFilter));
        let t = Resource::parse("topic/x").unwrap();
        assert!(t.can_match(ResourceType::Topic) && !t.can_match(ResourceType::TopicFilter));
    }
}
