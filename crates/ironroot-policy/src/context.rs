//! Who is asking (the connection) and which policies apply to it (the attachments).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::document::PolicyDocument;
use crate::variable::Variable;

/// The facts about one MQTT connection that policy variables and conditions refer to.
///
/// Built by the broker once the TLS handshake and CONNECT are done:
///
/// ```
/// use ironroot_policy::ConnectionContext;
///
/// let ctx = ConnectionContext::new("sensor-7")
///     .with_thing("sensor-7", [("room", "lab")])
///     .with_certificate_common_name("sensor-7");
/// assert_eq!(ctx.client_id(), "sensor-7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionContext {
    client_id: String,
    thing: Option<Thing>,
    common_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Thing {
    name: String,
    attributes: BTreeMap<String, String>,
}

impl ConnectionContext {
    /// A connection with this MQTT client id, not (yet) tied to a registered device.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            thing: None,
            common_name: None,
        }
    }

    /// Ties the connection to the registered device (thing) its certificate belongs to, with
    /// the device's attributes. Sets `iot:Connection.Thing.IsAttached` to `true`.
    pub fn with_thing<K, V>(
        mut self,
        name: impl Into<String>,
        attributes: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.thing = Some(Thing {
            name: name.into(),
            attributes: attributes
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        });
        self
    }

    /// Records the client certificate's subject common name.
    pub fn with_certificate_common_name(mut self, cn: impl Into<String>) -> Self {
        self.common_name = Some(cn.into());
        self
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The registered device name, if the certificate belongs to one.
    pub fn thing_name(&self) -> Option<&str> {
        self.thing.as_ref().map(|t| t.name.as_str())
    }

    /// The value of `var` for this connection; `group` is the group through which the policy
    /// being evaluated is attached. Empty values count as absent.
    pub(crate) fn value<'a>(&'a self, var: &Variable, group: Option<&'a str>) -> Option<&'a str> {
        let v = match var {
            Variable::ClientId => Some(self.client_id.as_str()),
            Variable::ThingName => self.thing_name(),
            Variable::ThingIsAttached => Some(if self.thing.is_some() {
                "true"
            } else {
                "false"
            }),
            Variable::ThingAttribute(name) => self
                .thing
                .as_ref()
                .and_then(|t| t.attributes.get(name))
                .map(String::as_str),
            Variable::CertificateCommonName => self.common_name.as_deref(),
            Variable::Group => group,
        };
        v.filter(|s| !s.is_empty())
    }
}

/// A policy name: 1 to 128 characters of letters, digits and `_+=,.@-` (the AWS IoT rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyName(Arc<str>);

/// A policy name that breaks the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy name {0:?}: use 1 to 128 letters, digits and the characters _+=,.@-")]
pub struct InvalidPolicyName(pub String);

impl PolicyName {
    /// Validates a policy name.
    pub fn new(name: &str) -> Result<Self, InvalidPolicyName> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        if ok {
            Ok(Self(name.into()))
        } else {
            Err(InvalidPolicyName(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a policy reaches a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attachment {
    /// Attached to the device itself.
    Device,
    /// Attached to a device group the device belongs to; `${ironroot:Group}` resolves to
    /// this group's name while this policy is evaluated.
    Group(String),
}

/// One policy version in force for a device: what the store hands the engine.
///
/// Policies are versioned in the store (like AWS IoT, one version is the default at a time);
/// the engine evaluates whichever versions it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    /// The policy's name.
    pub name: PolicyName,
    /// The version of the policy the document belongs to.
    pub version: u32,
    /// The validated document.
    pub document: Arc<PolicyDocument>,
    /// Through what the policy applies.
    pub attachment: Attachment,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_follow_the_aws_rule() {
        assert!(PolicyName::new("device-default_v2@x.y+z=1,2").is_ok());
        assert!(PolicyName::new("").is_err());
        assert!(PolicyName::new("a b").is_err());
        assert!(PolicyName::new("a/b").is_err());
        assert!(PolicyName::new(&"a".repeat(129)).is_err());
        assert_eq!(PolicyName::new("p").unwrap().to_string(), "p");
    }

    #[test]
    fn values_come_from_the_right_place_and_empty_is_absent() {
        let ctx = ConnectionContext::new("c")
            .with_thing("t", [("room", "lab"), ("empty", "")])
            .with_certificate_common_name("cn");
        assert_eq!(ctx.value(&Variable::ClientId, None), Some("c"));
        assert_eq!(ctx.value(&Variable::ThingName, None), Some("t"));
        assert_eq!(ctx.value(&Variable::ThingIsAttached, None), Some("true"));
        assert_eq!(
            ctx.value(&Variable::ThingAttribute("room".into()), None),
            Some("lab")
        );
        assert_eq!(
            ctx.value(&Variable::ThingAttribute("empty".into()), None),
            None
        );
        assert_eq!(ctx.value(&Variable::ThingAttribute("x".into()), None), None);
        assert_eq!(
            ctx.value(&Variable::CertificateCommonName, None),
            Some("cn")
        );
        assert_eq!(ctx.value(&Variable::Group, None), None);
        assert_eq!(ctx.value(&Variable::Group, Some("g")), Some("g"));
        let bare = ConnectionContext::new("c");
        assert_eq!(bare.value(&Variable::ThingIsAttached, None), Some("false"));
        assert_eq!(bare.value(&Variable::ThingName, None), None);
    }
}
