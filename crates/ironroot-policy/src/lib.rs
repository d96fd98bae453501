//! AWS IoT Core-style policies for MQTT authorization: parse, validate, lint, decide.
//!
//! Users already know AWS IoT Core policies, so ironroot speaks the same language: JSON
//! documents with `Allow`/`Deny` statements over the actions `iot:Connect`, `iot:Publish`,
//! `iot:Subscribe`, `iot:Receive` and `iot:RetainPublish`, on `client/`, `topic/` and
//! `topicfilter/` resources with IAM wildcards (`*`, `?`; MQTT's `+` and `#` are literal) and
//! policy variables such as `${iot:Connection.Thing.ThingName}`. Default deny; an explicit
//! `Deny` in any attached policy wins.
//!
//! The principal type is [`Authorizer`]: the policies attached to one device, compiled for
//! one connection, answering the broker's questions in well under a microsecond.
//!
//! ```text
//!   policy text ──PolicyDocument::parse──▶ PolicyDocument ──lint()──▶ [Finding]
//!   (upload, CLI)     (validation errors        │
//!                      with line + field)       │  + AttachedPolicy (name, version, device|group)
//!                                               ▼
//!   CONNECT ──ConnectionContext──▶ Authorizer::compile   conditions decided, variables
//!   (client id, device, attributes,         │            substituted, rules indexed by action
//!    certificate CN)                        ▼
//!   CONNECT / PUBLISH / SUBSCRIBE / each delivery ──▶ authorize() ──▶ Ok(Allowed) | Err(Denied)
//! ```
//!
//! # Getting started
//!
//! ```
//! use std::sync::Arc;
//! use ironroot_policy::{AttachedPolicy, Attachment, Authorizer, ConnectionContext, PolicyDocument, PolicyName};
//!
//! let doc = PolicyDocument::parse(r#"{
//!   "Version": "2012-10-17",
//!   "Statement": [
//!     {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": "topicfilter/alerts/#"},
//!     {"Effect": "Allow", "Action": ["iot:Receive"], "Resource": "topic/alerts/*"},
//!     {"Effect": "Deny", "Action": ["iot:Receive"], "Resource": "topic/alerts/internal/*"}
//!   ]
//! }"#)?;
//! let policy = AttachedPolicy {
//!     name: PolicyName::new("alerts-reader").unwrap(),
//!     version: 1,
//!     document: Arc::new(doc),
//!     attachment: Attachment::Group("dashboards".into()),
//! };
//! let auth = Authorizer::compile([&policy], &ConnectionContext::new("dash-1"));
//! assert!(auth.subscribe("alerts/#").is_ok());          // the filter string itself
//! assert!(auth.subscribe("alerts/+").is_err());         // `#` in a policy is literal
//! assert!(auth.receive("alerts/fire").is_ok());         // checked on every delivery
//! assert!(auth.receive("alerts/internal/x").is_err());  // explicit Deny wins
//! # Ok::<(), ironroot_policy::PolicyError>(())
//! ```
//!
//! # Semantics worth knowing
//!
//! - `iot:Subscribe` is checked against the topic filter *string*; `iot:Receive` against each
//!   concrete topic delivered. A `Deny` on `topicfilter/a/restricted/#` does not stop a
//!   subscriber of `a/#` from receiving `a/restricted/x` — deny `iot:Receive` on
//!   `topic/a/restricted/*` for that (the linter warns).
//! - A resource using a variable the connection has no value for never matches, so a `Deny`
//!   built on `${iot:Connection.Thing.Attributes[x]}` denies nothing to a device without
//!   attribute `x` (as in AWS IoT; the linter warns).
//! - Variable values are inserted literally; values with `/`, `+`, `#` are never placed in a
//!   topic resource (see [`Authorizer::compile`]).
#![forbid(unsafe_code)]

mod action;
mod authorizer;
pub mod builtin;
mod condition;
mod context;
mod document;
mod error;
mod glob;
mod json;
mod lint;
mod resource;
mod variable;

pub use action::{Action, ActionSet, ResourceType};
pub use authorizer::{Allowed, Authorizer, Denied, MAX_RESOURCE_NAME_BYTES, StatementRef};
pub use condition::Condition;
pub use context::{AttachedPolicy, Attachment, ConnectionContext, InvalidPolicyName, PolicyName};
pub use document::{
    Effect, MAX_DOCUMENT_BYTES, MAX_DOCUMENT_CHARACTERS, POLICY_VERSION, PolicyDocument, Statement,
};
pub use error::{ErrorKind, JsonError, Location, PolicyError, ResourceProblem, VariableProblem};
pub use lint::{Finding, LintCode, Severity, lint};
pub use resource::Resource;
pub use variable::Variable;
