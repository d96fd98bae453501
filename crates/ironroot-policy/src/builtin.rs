//! The built-in policies: what a device gets when no operator policy is attached, and what a
//! quarantined device is left with.

use std::sync::{Arc, OnceLock};

use crate::authorizer::Authorizer;
use crate::context::{AttachedPolicy, Attachment, ConnectionContext, PolicyName};
use crate::document::PolicyDocument;

/// Name of the built-in default device policy.
pub const DEFAULT_DEVICE_POLICY_NAME: &str = "ironroot-default-device";

/// Name of the built-in quarantine policy.
pub const QUARANTINE_POLICY_NAME: &str = "ironroot-quarantine";

/// The default device policy: connect only with a client id equal to the device's registry
/// name, publish only to `devices/<name>/telemetry`, subscribe to and receive only
/// `devices/<name>/commands`. Nothing else (no retained messages, no wildcards).
pub const DEFAULT_DEVICE_POLICY_JSON: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ConnectAsOwnThingName",
      "Effect": "Allow",
      "Action": "iot:Connect",
      "Resource": "client/${iot:Connection.Thing.ThingName}"
    },
    {
      "Sid": "PublishOwnTelemetry",
      "Effect": "Allow",
      "Action": "iot:Publish",
      "Resource": "topic/devices/${iot:Connection.Thing.ThingName}/telemetry"
    },
    {
      "Sid": "SubscribeOwnCommands",
      "Effect": "Allow",
      "Action": "iot:Subscribe",
      "Resource": "topicfilter/devices/${iot:Connection.Thing.ThingName}/commands"
    },
    {
      "Sid": "ReceiveOwnCommands",
      "Effect": "Allow",
      "Action": "iot:Receive",
      "Resource": "topic/devices/${iot:Connection.Thing.ThingName}/commands"
    }
  ]
}"#;

/// The quarantine policy: a quarantined device may still connect (as its own name) and
/// publish to `devices/<name>/status` so operators can see it, and nothing else — no
/// telemetry, no commands, no subscriptions, no retained messages.
///
/// It is meant to *replace* a device's policies ([`quarantined`]), not to be added to them:
/// IAM policies cannot express "deny every publish except one topic" without `NotResource`,
/// which ironroot does not implement.
pub const QUARANTINE_POLICY_JSON: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ConnectAsOwnThingName",
      "Effect": "Allow",
      "Action": "iot:Connect",
      "Resource": "client/${iot:Connection.Thing.ThingName}"
    },
    {
      "Sid": "PublishOwnStatusOnly",
      "Effect": "Allow",
      "Action": "iot:Publish",
      "Resource": "topic/devices/${iot:Connection.Thing.ThingName}/status"
    },
    {
      "Sid": "NothingElse",
      "Effect": "Deny",
      "Action": ["iot:Subscribe", "iot:Receive", "iot:RetainPublish"],
      "Resource": "*"
    }
  ]
}"#;

fn builtin(cell: &'static OnceLock<Arc<PolicyDocument>>, json: &str) -> Arc<PolicyDocument> {
    cell.get_or_init(|| {
        // The text is a constant checked by this module's tests; failing here is a build bug.
        Arc::new(PolicyDocument::parse(json).expect("built-in policy is valid"))
    })
    .clone()
}

fn attached(name: &str, document: Arc<PolicyDocument>) -> AttachedPolicy {
    AttachedPolicy {
        name: PolicyName::new(name).expect("built-in policy name is valid"),
        version: 1,
        document,
        attachment: Attachment::Device,
    }
}

/// The default device policy, attached to the device (see [`DEFAULT_DEVICE_POLICY_JSON`]).
pub fn default_device_policy() -> AttachedPolicy {
    static DOC: OnceLock<Arc<PolicyDocument>> = OnceLock::new();
    attached(
        DEFAULT_DEVICE_POLICY_NAME,
        builtin(&DOC, DEFAULT_DEVICE_POLICY_JSON),
    )
}

/// The quarantine policy, attached to the device (see [`QUARANTINE_POLICY_JSON`]).
pub fn quarantine_policy() -> AttachedPolicy {
    static DOC: OnceLock<Arc<PolicyDocument>> = OnceLock::new();
    attached(
        QUARANTINE_POLICY_NAME,
        builtin(&DOC, QUARANTINE_POLICY_JSON),
    )
}

/// The authorizer for a quarantined device: the quarantine policy alone, whatever else is
/// attached.
pub fn quarantined(ctx: &ConnectionContext) -> Authorizer {
    Authorizer::compile([&quarantine_policy()], ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_documents_parse() {
        assert_eq!(default_device_policy().document.statements().len(), 4);
        assert_eq!(quarantine_policy().document.statements().len(), 3);
        assert_eq!(
            default_device_policy().name.as_str(),
            DEFAULT_DEVICE_POLICY_NAME
        );
    }
}
