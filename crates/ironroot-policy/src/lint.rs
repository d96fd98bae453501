//! The policy linter: named findings for policies that are valid but risky.
//!
//! Validation ([`crate::PolicyDocument::parse`]) refuses what cannot mean anything; the linter
//! flags what means more than the author probably wanted. Each finding has a stable code
//! (`topic-catch-all`), a severity, the place, an explanation and a suggested fix.

use std::fmt;

use crate::action::{Action, ActionSet, ResourceType};
use crate::document::{Effect, PolicyDocument, Statement};
use crate::error::Location;
use crate::glob::{Matcher, Token};
use crate::resource::Resource;
use crate::variable::Segment;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Probably a mistake, harmless for security.
    Info,
    /// Grants more than intended in some situations, or a control that may not work.
    Warning,
    /// Gives devices access to other devices' data or identities.
    High,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
        })
    }
}

/// The kinds of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LintCode {
    /// `Allow` on every action (`iot:*` or `*`).
    AllowAllActions,
    /// `Allow` on a resource that covers every topic (`topic/*`, `*`) or permits the
    /// subscription filters `#` / `+/...`.
    TopicCatchAll,
    /// `Allow iot:Connect` on client ids not bound to the device (`client/*`).
    UnboundClientId,
    /// `Allow` with a wildcard covering several devices' namespaces, in a policy without any
    /// `Deny`.
    BroadGrantWithoutDeny,
    /// A `*` or `?` right after a variable: `devices/${iot:ClientId}*` also matches the
    /// topics of every device whose name starts with this one's.
    WildcardAfterVariable,
    /// A `*` or `?` right before a variable: matches devices whose name ends with this one's.
    WildcardBeforeVariable,
    /// A `Deny iot:Subscribe` on a topic filter without a matching `Deny iot:Receive`: a
    /// wider subscription still delivers the messages.
    DenySubscribeWithoutReceive,
    /// A `Deny` whose resource uses a variable that some connections lack: for them it
    /// denies nothing.
    DenyWithOptionalVariable,
    /// A resource of a type none of the statement's actions is checked against.
    ActionResourceMismatch,
    /// `iot:Receive` allowed but no `iot:Subscribe` in the policy.
    ReceiveWithoutSubscribe,
    /// `iot:Subscribe` allowed but no `iot:Receive` in the policy.
    SubscribeWithoutReceive,
    /// `iot:RetainPublish` allowed but no `iot:Publish` in the policy.
    RetainPublishWithoutPublish,
}

impl LintCode {
    /// Every code, for documentation and `--help`.
    pub const ALL: [LintCode; 12] = [
        LintCode::AllowAllActions,
        LintCode::TopicCatchAll,
        LintCode::UnboundClientId,
        LintCode::BroadGrantWithoutDeny,
        LintCode::WildcardAfterVariable,
        LintCode::WildcardBeforeVariable,
        LintCode::DenySubscribeWithoutReceive,
        LintCode::DenyWithOptionalVariable,
        LintCode::ActionResourceMismatch,
        LintCode::ReceiveWithoutSubscribe,
        LintCode::SubscribeWithoutReceive,
        LintCode::RetainPublishWithoutPublish,
    ];

    /// The stable name, such as `topic-catch-all`.
    pub fn name(self) -> &'static str {
        match self {
            LintCode::AllowAllActions => "allow-all-actions",
            LintCode::TopicCatchAll => "topic-catch-all",
            LintCode::UnboundClientId => "unbound-client-id",
            LintCode::BroadGrantWithoutDeny => "broad-grant-without-deny",
            LintCode::WildcardAfterVariable => "wildcard-after-variable",
            LintCode::WildcardBeforeVariable => "wildcard-before-variable",
            LintCode::DenySubscribeWithoutReceive => "deny-subscribe-without-receive",
            LintCode::DenyWithOptionalVariable => "deny-with-optional-variable",
            LintCode::ActionResourceMismatch => "action-resource-mismatch",
            LintCode::ReceiveWithoutSubscribe => "receive-without-subscribe",
            LintCode::SubscribeWithoutReceive => "subscribe-without-receive",
            LintCode::RetainPublishWithoutPublish => "retain-publish-without-publish",
        }
    }

    /// How much this kind of finding matters.
    pub fn severity(self) -> Severity {
        match self {
            LintCode::AllowAllActions | LintCode::TopicCatchAll | LintCode::UnboundClientId => {
                Severity::High
            }
            LintCode::BroadGrantWithoutDeny
            | LintCode::WildcardAfterVariable
            | LintCode::WildcardBeforeVariable
            | LintCode::DenySubscribeWithoutReceive
            | LintCode::DenyWithOptionalVariable
            | LintCode::ActionResourceMismatch => Severity::Warning,
            LintCode::ReceiveWithoutSubscribe
            | LintCode::SubscribeWithoutReceive
            | LintCode::RetainPublishWithoutPublish => Severity::Info,
        }
    }

    /// Why this matters, in a sentence or two.
    pub fn explanation(self) -> &'static str {
        match self {
            LintCode::AllowAllActions => {
                "every MQTT action is allowed, including retained publishes that persist on the broker"
            }
            LintCode::TopicCatchAll => {
                "a device holding this policy can read or write every topic of the fleet, including other devices' commands and telemetry"
            }
            LintCode::UnboundClientId => {
                "a device may connect under another device's client id, taking over that device's session and identity-bound topics"
            }
            LintCode::BroadGrantWithoutDeny => {
                "the wildcard covers the topics of many devices and no Deny statement narrows it"
            }
            LintCode::WildcardAfterVariable => {
                "a wildcard right after a variable also matches longer ids: device 'a1' would reach the topics of 'a10', 'a1-x', ..."
            }
            LintCode::WildcardBeforeVariable => {
                "a wildcard right before a variable also matches ids that end with this one: device '1' would reach the topics of 'a1', 'b1', ..."
            }
            LintCode::DenySubscribeWithoutReceive => {
                "iot:Subscribe is checked against the filter string only; a client allowed to subscribe to a wider filter (a/#) still receives these messages unless iot:Receive is denied too"
            }
            LintCode::DenyWithOptionalVariable => {
                "a resource whose variable has no value for a connection never matches, so this Deny does not apply to connections without the value"
            }
            LintCode::ActionResourceMismatch => {
                "iot:Connect is checked on client/, iot:Subscribe on topicfilter/, iot:Publish, iot:Receive and iot:RetainPublish on topic/; this resource never matches the statement's actions"
            }
            LintCode::ReceiveWithoutSubscribe => {
                "messages are only delivered on a subscription; without iot:Subscribe (here or in another attached policy) iot:Receive has no effect"
            }
            LintCode::SubscribeWithoutReceive => {
                "subscriptions succeed but every delivery is refused unless iot:Receive is granted here or in another attached policy"
            }
            LintCode::RetainPublishWithoutPublish => {
                "a retained publish needs both iot:Publish and iot:RetainPublish"
            }
        }
    }
}

impl fmt::Display for LintCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One linter finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of finding.
    pub code: LintCode,
    /// How much it matters (the code's default).
    pub severity: Severity,
    /// The statement it concerns (0-based), if any.
    pub statement: Option<usize>,
    /// Where in the document.
    pub location: Option<Location>,
    /// What was found, naming the resource or action.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// Lints a document. Findings are in document order; an empty list means nothing to report.
pub fn lint(doc: &PolicyDocument) -> Vec<Finding> {
    let mut out = Vec::new();
    let statements = doc.statements();
    let has_deny = statements.iter().any(|s| s.effect() == Effect::Deny);
    for (i, st) in statements.iter().enumerate() {
        let mut push = |code: LintCode, location: Location, message: String, fix: &str| {
            out.push(Finding {
                code,
                severity: code.severity(),
                statement: Some(i),
                location: Some(location),
                message,
                fix: fix.to_owned(),
            });
        };
        if st.effect() == Effect::Allow && st.actions() == ActionSet::ALL {
            push(
                LintCode::AllowAllActions,
                st.location(),
                format!(
                    "statement {i} allows every action ({})",
                    st.action_texts().join(", ")
                ),
                "list only the actions the device needs, e.g. [\"iot:Connect\", \"iot:Publish\"]",
            );
        }
        for (r, loc) in st.resources_with_locations() {
            let loc = *loc;
            let text = r.as_str();
            let checked: Vec<Action> = st
                .actions()
                .iter()
                .filter(|a| r.can_match(a.resource_type()))
                .collect();
            if checked.is_empty() {
                let actions: Vec<&str> = st.actions().iter().map(Action::name).collect();
                push(
                    LintCode::ActionResourceMismatch,
                    loc,
                    format!(
                        "resource \"{text}\" is never checked for {}",
                        actions.join(", ")
                    ),
                    "use client/ for iot:Connect, topicfilter/ for iot:Subscribe, topic/ for iot:Publish, iot:Receive, iot:RetainPublish",
                );
            }
            check_variable_neighbours(r, loc, &mut push);
            if st.effect() == Effect::Deny {
                if let Some(v) = r.variables().find(|v| !v.always_present()) {
                    push(
                        LintCode::DenyWithOptionalVariable,
                        loc,
                        format!("Deny on \"{text}\" uses {v}, which some connections lack"),
                        "deny without the variable, or make sure every device has the value (a missing value makes this Deny apply to nothing)",
                    );
                }
                continue;
            }
            // Allow-only checks below.
            let topic_actions = checked.iter().any(|a| *a != Action::Connect);
            if topic_actions && is_catch_all(r, &checked) {
                push(
                    LintCode::TopicCatchAll,
                    loc,
                    format!("\"{text}\" covers every topic for {}", names(&checked)),
                    "scope the resource to the device, e.g. topic/devices/${iot:Connection.Thing.ThingName}/telemetry",
                );
            } else if topic_actions && !has_deny && unscoped_wildcard(r) {
                push(
                    LintCode::BroadGrantWithoutDeny,
                    loc,
                    format!(
                        "\"{text}\" has a wildcard not bound to the device and no Deny limits it"
                    ),
                    "bind the wildcard to the device (devices/${iot:Connection.Thing.ThingName}/*) or add Deny statements for what must stay private",
                );
            }
            if checked.contains(&Action::Connect)
                && r.can_match(ResourceType::Client)
                && unscoped_wildcard(r)
            {
                push(
                    LintCode::UnboundClientId,
                    loc,
                    format!("iot:Connect on \"{text}\" allows client ids of other devices"),
                    "use client/${iot:Connection.Thing.ThingName}",
                );
            }
        }
        if st.effect() == Effect::Deny && st.actions().contains(Action::Subscribe) {
            check_deny_subscribe(statements, i, st, &mut out);
        }
    }
    document_level(doc, &mut out);
    out
}

fn names(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the resource's wildcard comes before any variable (or there is no variable):
/// then it spans many devices. In a topic filter, MQTT's `+` and `#` count as wildcards too:
/// they are literal to the policy but let the client subscribe to a wildcard filter.
fn unscoped_wildcard(r: &Resource) -> bool {
    let filter = r.resource_type() == Some(ResourceType::TopicFilter);
    for s in r.segments() {
        match s {
            Segment::Var(_) => return false,
            Segment::AnySeq | Segment::AnyOne => return true,
            Segment::Literal(l) if filter && l.contains(['+', '#']) => return true,
            Segment::Literal(_) => {}
        }
    }
    false
}

/// Whether the resource covers every topic (wildcard at the very start of the name), or lets
/// a client subscribe to `#` or to a filter starting with `+`.
fn is_catch_all(r: &Resource, actions: &[Action]) -> bool {
    let first = r.segments().first();
    if matches!(first, Some(Segment::AnySeq)) {
        return true;
    }
    let subscribes = actions.contains(&Action::Subscribe);
    subscribes
        && r.resource_type() == Some(ResourceType::TopicFilter)
        && matches!(first, Some(Segment::Literal(l)) if l.starts_with('#') || l.starts_with("+/") || l == "+")
}

fn check_variable_neighbours(
    r: &Resource,
    loc: Location,
    push: &mut impl FnMut(LintCode, Location, String, &str),
) {
    let segs = r.segments();
    for (i, s) in segs.iter().enumerate() {
        let Segment::Var(v) = s else { continue };
        let wild = |s: Option<&Segment>| matches!(s, Some(Segment::AnySeq | Segment::AnyOne));
        if wild(segs.get(i + 1)) {
            push(
                LintCode::WildcardAfterVariable,
                loc,
                format!("\"{}\": wildcard right after {v}", r.as_str()),
                "put a '/' between the variable and the wildcard: .../${iot:Connection.Thing.ThingName}/*",
            );
        }
        if i > 0 && wild(segs.get(i - 1)) {
            push(
                LintCode::WildcardBeforeVariable,
                loc,
                format!("\"{}\": wildcard right before {v}", r.as_str()),
                "put a '/' between the wildcard and the variable: .../*/${iot:Connection.Thing.ThingName}",
            );
        }
    }
}

/// The documented pitfall: a Deny on a topic filter is only a Deny on that subscription string.
fn check_deny_subscribe(
    statements: &[Statement],
    i: usize,
    st: &Statement,
    out: &mut Vec<Finding>,
) {
    for (r, loc) in st.resources_with_locations() {
        if r.resource_type() != Some(ResourceType::TopicFilter) {
            continue;
        }
        // The topics the filter covers, written as text with `*` where MQTT wildcards are.
        let as_topics: String = r
            .segments()
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.replace(['#', '+'], "*"),
                Segment::AnySeq => "*".into(),
                Segment::AnyOne => "?".into(),
                Segment::Var(v) => v.to_string(),
            })
            .collect();
        let covered = statements.iter().any(|other| {
            other.effect() == Effect::Deny
                && other.actions().contains(Action::Receive)
                && other.resources().any(|d| {
                    d.can_match(ResourceType::Topic) && literal_matcher(d).matches(&as_topics)
                })
        });
        if !covered {
            out.push(Finding {
                code: LintCode::DenySubscribeWithoutReceive,
                severity: LintCode::DenySubscribeWithoutReceive.severity(),
                statement: Some(i),
                location: Some(*loc),
                message: format!(
                    "Deny iot:Subscribe on \"{}\" does not stop a wider subscription from receiving these topics",
                    r.as_str()
                ),
                fix: format!(
                    "also deny iot:Receive on topic/{}",
                    as_topics
                ),
            });
        }
    }
}

/// A matcher for a resource's name in which variables stand for their own `${...}` text.
fn literal_matcher(r: &Resource) -> Matcher {
    Matcher::new(
        r.segments()
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => Token::Lit(l.as_str().into()),
                Segment::AnySeq => Token::AnySeq,
                Segment::AnyOne => Token::AnyOne,
                Segment::Var(v) => Token::Lit(v.to_string().into_boxed_str()),
            })
            .collect(),
    )
}

fn document_level(doc: &PolicyDocument, out: &mut Vec<Finding>) {
    let allowed = |a: Action| {
        doc.statements()
            .iter()
            .any(|s| s.effect() == Effect::Allow && s.actions().contains(a))
    };
    let first_allowing = |a: Action| {
        doc.statements()
            .iter()
            .position(|s| s.effect() == Effect::Allow && s.actions().contains(a))
    };
    let pairs = [
        (
            Action::Receive,
            Action::Subscribe,
            LintCode::ReceiveWithoutSubscribe,
        ),
        (
            Action::Subscribe,
            Action::Receive,
            LintCode::SubscribeWithoutReceive,
        ),
        (
            Action::RetainPublish,
            Action::Publish,
            LintCode::RetainPublishWithoutPublish,
        ),
    ];
    for (has, lacks, code) in pairs {
        if allowed(has) && !allowed(lacks) {
            let i = first_allowing(has);
            out.push(Finding {
                code,
                severity: code.severity(),
                statement: i,
                location: i.map(|i| doc.statements()[i].location()),
                message: format!("{has} is allowed but {lacks} is not"),
                fix: format!(
                    "allow {lacks} on the matching resources, unless another attached policy does"
                ),
            });
        }
    }
}
