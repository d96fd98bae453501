//! Helpers shared by the test modules.

use std::sync::Arc;

use ironroot_policy::{
    Action, AttachedPolicy, Attachment, Authorizer, ConnectionContext, Denied, PolicyDocument,
    PolicyName,
};

/// The outcome of a decision, without the borrowed details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    ExplicitDeny,
    DefaultDeny,
    TooLong,
}

pub use Outcome::*;

pub fn doc(json: &str) -> Arc<PolicyDocument> {
    Arc::new(PolicyDocument::parse(json).unwrap_or_else(|e| panic!("policy rejected: {e}\n{json}")))
}

/// Wraps statements (a JSON array body) into a document.
pub fn statements(body: &str) -> Arc<PolicyDocument> {
    doc(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{body}]}}"#
    ))
}

pub fn attach(name: &str, document: Arc<PolicyDocument>, attachment: Attachment) -> AttachedPolicy {
    AttachedPolicy {
        name: PolicyName::new(name).unwrap(),
        version: 1,
        document,
        attachment,
    }
}

pub fn on_device(document: Arc<PolicyDocument>) -> AttachedPolicy {
    attach("p", document, Attachment::Device)
}

pub fn outcome(auth: &Authorizer, action: Action, name: &str) -> Outcome {
    classify(auth.authorize(action, name))
}

pub fn classify(r: Result<ironroot_policy::Allowed<'_>, Denied<'_>>) -> Outcome {
    match r {
        Ok(_) => Allow,
        Err(Denied::Explicit { .. }) => ExplicitDeny,
        Err(Denied::NoAllow { .. }) => DefaultDeny,
        Err(Denied::ResourceNameTooLong { .. }) => TooLong,
        Err(other) => panic!("unexpected denial {other:?}"),
    }
}

/// A device registered as `name` connecting with client id `name`.
pub fn device(name: &str) -> ConnectionContext {
    ConnectionContext::new(name).with_thing(name, std::iter::empty::<(String, String)>())
}
