//! Per-connection compiled policies and the allow/deny decision.
//!
//! [`Authorizer::compile`] runs once per connection (and again when the device's policies,
//! groups or attributes change): it evaluates every `Condition`, substitutes every variable,
//! drops what cannot apply, and sorts what remains by action and effect. A decision is then a
//! scan of a few pre-built matchers — usually plain string comparisons.

use std::fmt;

use crate::action::{Action, ResourceType};
use crate::context::{AttachedPolicy, Attachment, ConnectionContext, PolicyName};
use crate::document::Effect;
use crate::glob::{Matcher, Token};
use crate::resource::Resource;
use crate::variable::{Segment, Variable};

/// Longest resource name (topic, filter or client id) the engine will evaluate. Longer names
/// are denied outright, which bounds wildcard matching time per decision.
pub const MAX_RESOURCE_NAME_BYTES: usize = 4096;

/// Names one statement of one attached policy version: the reason a decision was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// The policy's name.
    pub policy: PolicyName,
    /// The policy version.
    pub version: u32,
    /// Index of the statement in the document (0-based).
    pub index: usize,
    /// The statement's `Sid`, if it has one.
    pub sid: Option<String>,
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy {} version {} statement {}",
            self.policy, self.version, self.index
        )?;
        if let Some(sid) = &self.sid {
            write!(f, " ({sid})")?;
        }
        Ok(())
    }
}

/// A permitted request, with the statement that allowed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed<'a> {
    /// The `Allow` statement that matched first.
    pub by: &'a StatementRef,
}

/// A refused request, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denied<'a> {
    /// A `Deny` statement matched; it wins over every `Allow`.
    Explicit {
        /// The refused action.
        action: Action,
        /// The `Deny` statement.
        by: &'a StatementRef,
    },
    /// No statement allowed the request (the default).
    NoAllow {
        /// The refused action.
        action: Action,
    },
    /// The resource name is longer than [`MAX_RESOURCE_NAME_BYTES`].
    ResourceNameTooLong {
        /// The refused action.
        action: Action,
        /// The name's length in bytes.
        bytes: usize,
    },
}

impl fmt::Display for Denied<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Explicit { action, by } => write!(f, "{action} denied by {by}"),
            Denied::NoAllow { action } => {
                write!(f, "{action} denied: no attached policy allows it")
            }
            Denied::ResourceNameTooLong { action, bytes } => write!(
                f,
                "{action} denied: resource name of {bytes} bytes exceeds {MAX_RESOURCE_NAME_BYTES}"
            ),
        }
    }
}

impl std::error::Error for Denied<'_> {}

/// One compiled resource of one statement.
#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    /// The matcher covers `TYPE/NAME` (the resource's type was itself a wildcard).
    whole: bool,
    /// Index into `Authorizer::origins`.
    origin: usize,
}

#[derive(Debug, Clone, Default)]
struct Rules {
    deny: Vec<Rule>,
    allow: Vec<Rule>,
}

/// The policies of one connection, compiled for fast decisions.
///
/// ```
/// use ironroot_policy::{Authorizer, ConnectionContext, builtin};
///
/// let ctx = ConnectionContext::new("sensor-7").with_thing("sensor-7", [("room", "lab")]);
/// let auth = Authorizer::compile([&builtin::default_device_policy()], &ctx);
/// assert!(auth.connect().is_ok());
/// assert!(auth.publish("devices/sensor-7/telemetry", false).is_ok());
/// assert!(auth.publish("devices/sensor-8/telemetry", false).is_err());
/// assert!(auth.subscribe("devices/sensor-7/commands").is_ok());
/// assert!(auth.subscribe("devices/+/commands").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Authorizer {
    client_id: Box<str>,
    rules: [Rules; 5],
    origins: Vec<StatementRef>,
}

impl Authorizer {
    /// Compiles the policies attached to a device for one connection.
    ///
    /// Per statement: a `Condition` that does not hold drops it; a resource whose variable
    /// has no value for this connection is dropped (so such a `Deny` denies nothing, as in AWS
    /// IoT). A variable value containing `/`, `+`, `#` or NUL would change the topic structure
    /// or act as an MQTT wildcard in a topic filter, so it is never substituted into a topic
    /// or topic-filter resource: such an `Allow` resource is dropped and such a `Deny`
    /// resource denies every resource of its type (fail closed). `*` and `?` in values are
    /// substituted as literal characters.
    pub fn compile<'p>(
        policies: impl IntoIterator<Item = &'p AttachedPolicy>,
        ctx: &ConnectionContext,
    ) -> Self {
        let mut auth = Authorizer {
            client_id: ctx.client_id().into(),
            rules: Default::default(),
            origins: Vec::new(),
        };
        for policy in policies {
            let group = match &policy.attachment {
                Attachment::Group(g) => Some(g.as_str()),
                Attachment::Device => None,
            };
            let lookup = |v: &Variable| ctx.value(v, group);
            for (index, st) in policy.document.statements().iter().enumerate() {
                if st.condition().evaluate(&lookup) != Some(true) {
                    continue;
                }
                let origin = auth.origins.len();
                let mut used = false;
                for action in st.actions().iter() {
                    let ty = action.resource_type();
                    for resource in st.resources() {
                        if !resource.can_match(ty) {
                            continue;
                        }
                        let Some((matcher, whole)) =
                            compile_resource(resource, ty, st.effect(), &lookup)
                        else {
                            continue;
                        };
                        let rules = &mut auth.rules[action.index()];
                        let list = match st.effect() {
                            Effect::Allow => &mut rules.allow,
                            Effect::Deny => &mut rules.deny,
                        };
                        list.push(Rule {
                            matcher,
                            whole,
                            origin,
                        });
                        used = true;
                    }
                }
                if used {
                    auth.origins.push(StatementRef {
                        policy: policy.name.clone(),
                        version: policy.version,
                        index,
                        sid: st.sid().map(str::to_owned),
                    });
                }
            }
        }
        auth
    }

    /// Decides `action` on the resource `name` (a client id for [`Action::Connect`], a topic
    /// filter for [`Action::Subscribe`], a topic name otherwise): an explicit `Deny` wins,
    /// then any `Allow`, otherwise denied.
    pub fn authorize(&self, action: Action, name: &str) -> Result<Allowed<'_>, Denied<'_>> {
        if name.len() > MAX_RESOURCE_NAME_BYTES {
            return Err(Denied::ResourceNameTooLong {
                action,
                bytes: name.len(),
            });
        }
        let rules = &self.rules[action.index()];
        // `TYPE/NAME`, built only if a rule with a wildcard type needs it.
        let mut whole: Option<String> = None;
        let mut hit = |rule: &Rule| {
            if rule.whole {
                let text = whole
                    .get_or_insert_with(|| format!("{}/{name}", action.resource_type().name()));
                rule.matcher.matches(text)
            } else {
                rule.matcher.matches(name)
            }
        };
        if let Some(rule) = rules.deny.iter().find(|r| hit(r)) {
            return Err(Denied::Explicit {
                action,
                by: &self.origins[rule.origin],
            });
        }
        match rules.allow.iter().find(|r| hit(r)) {
            Some(rule) => Ok(Allowed {
                by: &self.origins[rule.origin],
            }),
            None => Err(Denied::NoAllow { action }),
        }
    }

    /// `iot:Connect` for this connection's client id.
    pub fn connect(&self) -> Result<Allowed<'_>, Denied<'_>> {
        self.authorize(Action::Connect, &self.client_id)
    }

    /// `iot:Publish` on `topic`, and also `iot:RetainPublish` when `retain` is set (AWS IoT
    /// requires both for a retained message).
    pub fn publish(&self, topic: &str, retain: bool) -> Result<Allowed<'_>, Denied<'_>> {
        let allowed = self.authorize(Action::Publish, topic)?;
        if retain {
            self.authorize(Action::RetainPublish, topic)?;
        }
        Ok(allowed)
    }

    /// `iot:Subscribe` on the topic filter string itself (`a/+/b` is matched as written; a
    /// policy's `+` and `#` are literal characters).
    pub fn subscribe(&self, filter: &str) -> Result<Allowed<'_>, Denied<'_>> {
        self.authorize(Action::Subscribe, filter)
    }

    /// `iot:Receive` on the concrete topic of a message about to be delivered. The broker
    /// must ask for every delivery: a permitted subscription such as `a/#` does not imply
    /// permission to receive every topic it matches.
    pub fn receive(&self, topic: &str) -> Result<Allowed<'_>, Denied<'_>> {
        self.authorize(Action::Receive, topic)
    }

    /// Number of compiled rules (resources × actions) across all statements; for metrics.
    pub fn rule_count(&self) -> usize {
        self.rules
            .iter()
            .map(|r| r.allow.len() + r.deny.len())
            .sum()
    }
}

/// Whether a variable value may be placed inside a topic or topic filter: it must stay one
/// topic level and carry no MQTT wildcard.
fn topic_safe(value: &str) -> bool {
    !value.contains(['/', '+', '#', '\0'])
}

/// Substitutes variables into one resource for one action type. `None`: the resource cannot
/// apply to this connection.
fn compile_resource<'v>(
    resource: &Resource,
    ty: ResourceType,
    effect: Effect,
    lookup: &impl Fn(&Variable) -> Option<&'v str>,
) -> Option<(Matcher, bool)> {
    let mut tokens = Vec::with_capacity(resource.segments().len());
    for segment in resource.segments() {
        tokens.push(match segment {
            Segment::Literal(l) => Token::Lit(l.as_str().into()),
            Segment::AnySeq => Token::AnySeq,
            Segment::AnyOne => Token::AnyOne,
            Segment::Var(v) => {
                let value = lookup(v)?;
                if ty != ResourceType::Client && !topic_safe(value) {
                    return match effect {
                        Effect::Allow => None,
                        Effect::Deny => Some((Matcher::Any, false)),
                    };
                }
                Token::Lit(value.into())
            }
        });
    }
    let matcher = Matcher::new(tokens);
    let whole = resource.resource_type().is_none() && matcher != Matcher::Any;
    Some((matcher, whole))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorizer_can_be_shared_across_broker_tasks() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Authorizer>();
        assert_send_sync::<AttachedPolicy>();
    }

    #[test]
    fn unsafe_values_are_detected() {
        for v in ["a/b", "+", "#", "a\0"] {
            assert!(!topic_safe(v), "{v:?}");
        }
        for v in ["a", "*", "?", "$x", "é"] {
            assert!(topic_safe(v), "{v:?}");
        }
    }
}
