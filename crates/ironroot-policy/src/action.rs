//! The MQTT actions a policy can allow or deny, and the resource type each one is checked on.

use std::fmt;

use crate::error::ErrorKind;
use crate::glob;

/// An MQTT operation the broker asks the policy engine about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `iot:Connect`, checked on CONNECT against `client/<client id>`.
    Connect,
    /// `iot:Publish`, checked on every PUBLISH against `topic/<topic name>`.
    Publish,
    /// `iot:Subscribe`, checked on SUBSCRIBE against `topicfilter/<filter>`: the filter string
    /// itself, `+` and `#` included, not the topics it would match.
    Subscribe,
    /// `iot:Receive`, checked on every delivery against `topic/<topic name>`.
    Receive,
    /// `iot:RetainPublish`, checked (in addition to `iot:Publish`) on a PUBLISH with the
    /// RETAIN flag, against `topic/<topic name>`.
    RetainPublish,
}

impl Action {
    /// All actions, in a fixed order (the order of [`Action::index`]).
    pub const ALL: [Action; 5] = [
        Action::Connect,
        Action::Publish,
        Action::Subscribe,
        Action::Receive,
        Action::RetainPublish,
    ];

    /// The action's policy name, such as `iot:Publish`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Connect => "iot:Connect",
            Action::Publish => "iot:Publish",
            Action::Subscribe => "iot:Subscribe",
            Action::Receive => "iot:Receive",
            Action::RetainPublish => "iot:RetainPublish",
        }
    }

    /// The resource type this action is checked against.
    pub fn resource_type(self) -> ResourceType {
        match self {
            Action::Connect => ResourceType::Client,
            Action::Subscribe => ResourceType::TopicFilter,
            Action::Publish | Action::Receive | Action::RetainPublish => ResourceType::Topic,
        }
    }

    /// Position in [`Action::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds of MQTT resource in a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// `client/<client id>`.
    Client,
    /// `topic/<topic name>`.
    Topic,
    /// `topicfilter/<topic filter>`.
    TopicFilter,
}

impl ResourceType {
    /// The type's name as written before the `/` in a resource.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Client => "client",
            ResourceType::Topic => "topic",
            ResourceType::TopicFilter => "topicfilter",
        }
    }

    /// The type with this exact name.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "client" => Some(ResourceType::Client),
            "topic" => Some(ResourceType::Topic),
            "topicfilter" => Some(ResourceType::TopicFilter),
            _ => None,
        }
    }
}

/// A set of actions (a statement's `Action` list after wildcards are expanded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ActionSet(u8);

impl ActionSet {
    /// Every action.
    pub const ALL: ActionSet = ActionSet(0b1_1111);

    /// Whether `action` is in the set.
    pub fn contains(self, action: Action) -> bool {
        self.0 & (1 << action.index()) != 0
    }

    /// Adds `action`.
    pub fn insert(&mut self, action: Action) {
        self.0 |= 1 << action.index();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in the set, in [`Action::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }
}

/// AWS IoT data-plane actions outside MQTT messaging, refused with a specific message.
const AWS_ONLY_ACTIONS: &[&str] = &[
    "deleteconnection",
    "getretainedmessage",
    "listretainedmessages",
    "getthingshadow",
    "updatethingshadow",
    "deletethingshadow",
    "listnamedshadowsforthing",
    "describejobexecution",
    "getpendingjobexecutions",
    "startnextpendingjobexecution",
    "updatejobexecution",
    "assumerolewithcertificate",
];

/// Parses one entry of a statement's `Action` list.
///
/// Action names are case-insensitive, as in IAM. `*` and `iot:*` mean every action; other
/// wildcards (`iot:Re*`) are matched against the five MQTT actions and must match one.
pub(crate) fn parse_action(text: &str) -> Result<ActionSet, ErrorKind> {
    let lower = text.to_ascii_lowercase();
    if lower == "*" {
        return Ok(ActionSet::ALL);
    }
    let unknown = || ErrorKind::UnknownAction {
        action: text.to_owned(),
        suggestion: suggest(&lower),
    };
    let Some((service, name)) = lower.split_once(':') else {
        return Err(unknown());
    };
    if !glob::simple_match(service, "iot") {
        return Err(unknown());
    }
    let mut set = ActionSet::default();
    for action in Action::ALL {
        let full = action.name().to_ascii_lowercase();
        if glob::simple_match(name, &full["iot:".len()..]) {
            set.insert(action);
        }
    }
    if !set.is_empty() {
        return Ok(set);
    }
    if name.contains(['*', '?']) {
        return Err(ErrorKind::ActionPatternMatchesNothing(text.to_owned()));
    }
    if service == "iot" && AWS_ONLY_ACTIONS.contains(&name) {
        return Err(ErrorKind::UnsupportedAction(text.to_owned()));
    }
    Err(unknown())
}

/// Parses a whole `Action` list.
pub(crate) fn union_all(sets: impl IntoIterator<Item = ActionSet>) -> ActionSet {
    sets.into_iter()
        .fold(ActionSet::default(), ActionSet::union)
}

/// The known action closest to `lower` (edit distance at most 2), for "did you mean".
fn suggest(lower: &str) -> Option<&'static str> {
    let candidate = if lower.contains(':') {
        lower.to_owned()
    } else {
        format!("iot:{lower}")
    };
    Action::ALL
        .iter()
        .map(|a| {
            (
                a.name(),
                edit_distance(&candidate, &a.name().to_ascii_lowercase()),
            )
        })
        .filter(|(_, d)| *d <= 2)
        .min_by_key(|(_, d)| *d)
        .map(|(n, _)| n)
}

/// Levenshtein distance over bytes (inputs are short ASCII names).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(actions: &[Action]) -> ActionSet {
        let mut s = ActionSet::default();
        for a in actions {
            s.insert(*a);
        }
        s
    }

    #[test]
    fn parses_names_case_insensitively_and_expands_wildcards() {
        assert_eq!(parse_action("iot:Publish"), Ok(set(&[Action::Publish])));
        assert_eq!(parse_action("IOT:publish"), Ok(set(&[Action::Publish])));
        assert_eq!(parse_action("iot:*"), Ok(ActionSet::ALL));
        assert_eq!(parse_action("*"), Ok(ActionSet::ALL));
        assert_eq!(
            parse_action("iot:Re*"),
            Ok(set(&[Action::Receive, Action::RetainPublish]))
        );
        assert_eq!(parse_action("*:Connect"), Ok(set(&[Action::Connect])));
    }

    #[test]
    fn rejects_unknown_and_unsupported_actions() {
        assert_eq!(
            parse_action("iot:Publsh"),
            Err(ErrorKind::UnknownAction {
                action: "iot:Publsh".into(),
                suggestion: Some("iot:Publish")
            })
        );
        assert_eq!(
            parse_action("Publish"),
            Err(ErrorKind::UnknownAction {
                action: "Publish".into(),
                suggestion: Some("iot:Publish")
            })
        );
        assert_eq!(
            parse_action("iot:UpdateThingShadow"),
            Err(ErrorKind::UnsupportedAction("iot:UpdateThingShadow".into()))
        );
        assert_eq!(
            parse_action("iot:Get*"),
            Err(ErrorKind::ActionPatternMatchesNothing("iot:Get*".into()))
        );
        assert!(matches!(
            parse_action("s3:GetObject"),
            Err(ErrorKind::UnknownAction { .. })
        ));
    }

    #[test]
    fn action_set_operations() {
        let s = set(&[Action::Subscribe, Action::Connect]);
        assert!(s.contains(Action::Connect) && !s.contains(Action::Publish));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Action::Connect, Action::Subscribe]
        );
        assert_eq!(
            union_all([set(&[Action::Publish]), set(&[Action::Receive])]),
            set(&[Action::Publish, Action::Receive])
        );
    }
}
