//! Table-driven decisions: one row per documented rule or pitfall.

use ironroot_policy::{Action, Attachment, Authorizer, ConnectionContext, Denied};

use crate::support::*;

use Action::*;

struct Case {
    name: &'static str,
    /// Statements (JSON array body) of the single attached policy.
    policy: &'static str,
    ctx: fn() -> ConnectionContext,
    checks: &'static [(Action, &'static str, Outcome)],
}

fn plain() -> ConnectionContext {
    ConnectionContext::new("dev1")
}

fn dev1() -> ConnectionContext {
    device("dev1")
}

const CASES: &[Case] = &[
    Case {
        name: "default deny: nothing allowed unless a statement says so",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/a"}"#,
        ctx: plain,
        checks: &[
            (Publish, "a", Allow),
            (Publish, "b", DefaultDeny),
            (Subscribe, "a", DefaultDeny),
            (Receive, "a", DefaultDeny),
            (Connect, "dev1", DefaultDeny),
        ],
    },
    Case {
        name: "IAM * spans levels and ? is exactly one character",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":["topic/foo/*","topic/q/?"]}"#,
        ctx: plain,
        checks: &[
            (Publish, "foo/bar/baz", Allow),
            (Publish, "foo/", Allow),
            (Publish, "foo", DefaultDeny),
            (Publish, "q/x", Allow),
            (Publish, "q/é", Allow),
            (Publish, "q/xy", DefaultDeny),
        ],
    },
    Case {
        // AWS guide: "the following policy allows a client to subscribe to the topic filter
        // foo/+/bar only ... subscribing to foo/baz/bar fails".
        name: "MQTT + and # are literal characters in a policy",
        policy: r#"{"Effect":"Allow","Action":["iot:Subscribe","iot:Publish"],"Resource":["arn:aws:iot:us-east-1:123456789012:topicfilter/foo/+/bar","topicfilter/all/#","topic/foo/+/bar"]}"#,
        ctx: plain,
        checks: &[
            (Subscribe, "foo/+/bar", Allow),
            (Subscribe, "foo/baz/bar", DefaultDeny),
            (Subscribe, "all/#", Allow),
            (Subscribe, "all/x", DefaultDeny),
            (Subscribe, "all/+", DefaultDeny),
            (Publish, "foo/x/bar", DefaultDeny),
        ],
    },
    Case {
        name: "topic names are case-sensitive",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/Alerts"}"#,
        ctx: plain,
        checks: &[(Publish, "Alerts", Allow), (Publish, "alerts", DefaultDeny)],
    },
    Case {
        name: "ARN region and account are accepted with any value; * covers every type",
        policy: r#"{"Effect":"Allow","Action":"iot:*","Resource":"arn:aws:iot:eu-west-1:999999999999:*"}"#,
        ctx: plain,
        checks: &[
            (Connect, "dev1", Allow),
            (Publish, "x/y", Allow),
            (Subscribe, "#", Allow),
            (Receive, "x", Allow),
            (RetainPublish, "x", Allow),
        ],
    },
    Case {
        name: "a wildcard resource type is matched against TYPE/NAME per request",
        policy: r#"{"Effect":"Allow","Action":"iot:*","Resource":"arn:aws:iot:*:*:topic*"}"#,
        ctx: plain,
        checks: &[
            (Publish, "x", Allow),
            (Subscribe, "x/#", Allow),
            (Connect, "dev1", DefaultDeny),
        ],
    },
    Case {
        name: "resource of another type never matches the action",
        policy: r#"{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"topicfilter/a"}"#,
        ctx: plain,
        checks: &[(Publish, "a", DefaultDeny), (Receive, "a", DefaultDeny)],
    },
    Case {
        name: "explicit Deny wins over Allow in the same policy",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/*"},
                   {"Effect":"Deny","Action":"iot:*","Resource":"topic/secret/*"}"#,
        ctx: plain,
        checks: &[
            (Publish, "public/x", Allow),
            (Publish, "secret/x", ExplicitDeny),
            (Receive, "secret/x", ExplicitDeny),
        ],
    },
    Case {
        // AWS guide, "Policies to deny receiving messages from subtopics": Subscribe is
        // checked on the filter string, Receive on each delivered topic.
        name: "pitfall: Deny on topicfilter does not stop a wider subscription from receiving",
        policy: r#"{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/a/*"},
                   {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/a/*"},
                   {"Effect":"Deny","Action":"iot:Subscribe","Resource":"topicfilter/a/restricted/*"}"#,
        ctx: plain,
        checks: &[
            (Subscribe, "a/#", Allow),
            (Subscribe, "a/restricted/#", ExplicitDeny),
            (Subscribe, "a/restricted/x", ExplicitDeny),
            // The subscription a/# was allowed, and delivery of a/restricted/x is too.
            (Receive, "a/restricted/x", Allow),
        ],
    },
    Case {
        name: "pitfall fixed: denying iot:Receive stops delivery through any filter",
        policy: r#"{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/a/*"},
                   {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/a/*"},
                   {"Effect":"Deny","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/a/restricted/*","topic/a/restricted/*"]}"#,
        ctx: plain,
        checks: &[
            (Subscribe, "a/#", Allow),
            (Receive, "a/restricted/x", ExplicitDeny),
            (Receive, "a/open", Allow),
        ],
    },
    Case {
        name: "${iot:ClientId} scopes a device to its own topics",
        policy: r#"{"Effect":"Allow","Action":["iot:Connect"],"Resource":"client/${iot:ClientId}"},
                   {"Effect":"Allow","Action":["iot:Publish"],"Resource":"topic/devices/${iot:ClientId}/*"}"#,
        ctx: plain,
        checks: &[
            (Connect, "dev1", Allow),
            (Connect, "dev2", DefaultDeny),
            (Publish, "devices/dev1/t", Allow),
            (Publish, "devices/dev2/t", DefaultDeny),
            (Publish, "devices/dev10/t", DefaultDeny),
        ],
    },
    Case {
        name: "a variable without a value makes its resource match nothing",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":["topic/things/${iot:Connection.Thing.ThingName}","topic/cn/${iot:Certificate.Subject.CommonName}"]}"#,
        ctx: plain,
        checks: &[
            (Publish, "things/", DefaultDeny),
            (
                Publish,
                "things/${iot:Connection.Thing.ThingName}",
                DefaultDeny,
            ),
            (Publish, "cn/", DefaultDeny),
        ],
    },
    Case {
        name: "thing name, attributes and certificate CN variables",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":[
                     "topic/t/${iot:Connection.Thing.ThingName}",
                     "topic/${iot:Connection.Thing.Attributes[site]}/*",
                     "topic/cn/${iot:Certificate.Subject.CommonName}"]}"#,
        ctx: || {
            ConnectionContext::new("dev1")
                .with_thing("thing-1", [("site", "lab")])
                .with_certificate_common_name("cn-1")
        },
        checks: &[
            (Publish, "t/thing-1", Allow),
            (Publish, "t/dev1", DefaultDeny),
            (Publish, "lab/x", Allow),
            (Publish, "home/x", DefaultDeny),
            (Publish, "cn/cn-1", Allow),
        ],
    },
    Case {
        // AWS guide: "if the device certificate is not associated with a thing, this
        // variable won't be resolved and will cause an access denied error". A Deny built on
        // it therefore denies nothing — the linter warns about exactly this.
        name: "a Deny whose variable has no value denies nothing (AWS behaviour)",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/*"},
                   {"Effect":"Deny","Action":"iot:Publish","Resource":"topic/${iot:Connection.Thing.Attributes[blocked]}/*"}"#,
        ctx: plain,
        checks: &[(Publish, "x/y", Allow)],
    },
    Case {
        name: "variable values are literal: a client id of * or ? is no wildcard",
        policy: r#"{"Effect":"Allow","Action":["iot:Publish","iot:Subscribe"],"Resource":["topic/devices/${iot:ClientId}/t","topicfilter/devices/${iot:ClientId}/t"]}"#,
        ctx: || ConnectionContext::new("*?"),
        checks: &[
            (Publish, "devices/*?/t", Allow),
            (Publish, "devices/ab/t", DefaultDeny),
            (Publish, "devices/x?/t", DefaultDeny),
            (Subscribe, "devices/*?/t", Allow),
            (Subscribe, "devices/+/t", DefaultDeny),
        ],
    },
    Case {
        name: "a client id of + is never substituted into a topic filter",
        policy: r#"{"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/devices/${iot:ClientId}/commands","topic/devices/${iot:ClientId}/commands"]}"#,
        ctx: || ConnectionContext::new("+"),
        checks: &[
            (Subscribe, "devices/+/commands", DefaultDeny),
            (Receive, "devices/+/commands", DefaultDeny),
            (Receive, "devices/other/commands", DefaultDeny),
        ],
    },
    Case {
        name: "a client id of # is never substituted into a topic filter",
        policy: r##"{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/${iot:ClientId}"}"##,
        ctx: || ConnectionContext::new("#"),
        checks: &[(Subscribe, "devices/#", DefaultDeny)],
    },
    Case {
        name: "a client id with / cannot reach into another device's topic space",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:ClientId}/telemetry"},
                   {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:ClientId}"}"#,
        ctx: || ConnectionContext::new("dev1/telemetry/x"),
        checks: &[
            (Publish, "devices/dev1/telemetry/x/telemetry", DefaultDeny),
            // client/ resources compare the whole id literally, so connecting is fine.
            (Connect, "dev1/telemetry/x", Allow),
        ],
    },
    Case {
        name: "a Deny whose variable holds / or + fails closed",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/*"},
                   {"Effect":"Deny","Action":"iot:Publish","Resource":"topic/private/${iot:ClientId}"}"#,
        ctx: || ConnectionContext::new("a/b"),
        checks: &[
            (Publish, "public/x", ExplicitDeny),
            (Publish, "private/a/b", ExplicitDeny),
        ],
    },
    Case {
        name: "${*} ${?} ${$} are literal characters",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":["topic/a${*}","topic/b${?}","topic/c${$}x","topic/$aws/things/x"]}"#,
        ctx: plain,
        checks: &[
            (Publish, "a*", Allow),
            (Publish, "ax", DefaultDeny),
            (Publish, "b?", Allow),
            (Publish, "bx", DefaultDeny),
            (Publish, "c$x", Allow),
            (Publish, "$aws/things/x", Allow),
        ],
    },
    Case {
        // AWS guide, thing policy examples: connect only when the certificate is attached.
        name: "Condition Bool iot:Connection.Thing.IsAttached",
        policy: r#"{"Effect":"Allow","Action":["iot:Connect"],"Resource":["*"],"Condition":{"Bool":{"iot:Connection.Thing.IsAttached":["true"]}}}"#,
        ctx: dev1,
        checks: &[(Connect, "dev1", Allow)],
    },
    Case {
        name: "Condition Bool IsAttached refuses an unregistered certificate",
        policy: r#"{"Effect":"Allow","Action":["iot:Connect"],"Resource":["*"],"Condition":{"Bool":{"iot:Connection.Thing.IsAttached":true}}}"#,
        ctx: plain,
        checks: &[(Connect, "dev1", DefaultDeny)],
    },
    Case {
        name: "Condition StringEquals on an attribute and StringLike on the client id",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/stats","Condition":{
                      "StringEquals":{"iot:Connection.Thing.Attributes[tier]":["gold","silver"]},
                      "StringLike":{"iot:ClientId":"sensor-*"}}}"#,
        ctx: || ConnectionContext::new("sensor-1").with_thing("sensor-1", [("tier", "silver")]),
        checks: &[(Publish, "stats", Allow)],
    },
    Case {
        name: "Condition fails when one operator fails",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/stats","Condition":{
                      "StringEquals":{"iot:Connection.Thing.Attributes[tier]":"gold"},
                      "StringLike":{"iot:ClientId":"sensor-*"}}}"#,
        ctx: || ConnectionContext::new("sensor-1").with_thing("sensor-1", [("tier", "silver")]),
        checks: &[(Publish, "stats", DefaultDeny)],
    },
    Case {
        name: "StringNotEquals on a missing key holds (IAM), so the Deny applies",
        policy: r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/*"},
                   {"Effect":"Deny","Action":"iot:Publish","Resource":"topic/premium/*","Condition":{"StringNotEquals":{"iot:Connection.Thing.Attributes[tier]":"gold"}}}"#,
        ctx: plain,
        checks: &[
            (Publish, "premium/x", ExplicitDeny),
            (Publish, "basic/x", Allow),
        ],
    },
    Case {
        name: "a condition value with a variable compares to the variable's value",
        policy: r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"StringEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}}"#,
        ctx: || ConnectionContext::new("dev1").with_thing("dev2", [("a", "b")]),
        checks: &[(Connect, "dev1", DefaultDeny)],
    },
    Case {
        name: "action names are case-insensitive and wildcards expand",
        policy: r#"{"Effect":"Allow","Action":["IOT:PUBLISH","iot:re*"],"Resource":"topic/x"}"#,
        ctx: plain,
        checks: &[
            (Publish, "x", Allow),
            (Receive, "x", Allow),
            (RetainPublish, "x", Allow),
            (Subscribe, "x", DefaultDeny),
        ],
    },
];

#[test]
fn decision_table() {
    for case in CASES {
        let policy = on_device(statements(case.policy));
        let auth = Authorizer::compile([&policy], &(case.ctx)());
        for (action, name, expected) in case.checks {
            assert_eq!(
                outcome(&auth, *action, name),
                *expected,
                "case {:?}: {action} on {name:?}",
                case.name
            );
        }
    }
}

#[test]
fn deny_in_one_policy_beats_allow_in_another() {
    let allow = attach(
        "allow-all",
        statements(r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#),
        Attachment::Device,
    );
    let deny = attach(
        "no-admin",
        statements(
            r#"{"Sid":"NoAdmin","Effect":"Deny","Action":"iot:Publish","Resource":"topic/admin/*"}"#,
        ),
        Attachment::Group("fleet".into()),
    );
    for order in [[&allow, &deny], [&deny, &allow]] {
        let auth = Authorizer::compile(order, &plain());
        match auth.authorize(Publish, "admin/reboot") {
            Err(Denied::Explicit { by, .. }) => {
                assert_eq!(by.policy.as_str(), "no-admin");
                assert_eq!(by.sid.as_deref(), Some("NoAdmin"));
                assert_eq!(by.index, 0);
            }
            other => panic!("expected explicit deny, got {other:?}"),
        }
        let allowed = auth.authorize(Publish, "other").expect("allowed");
        assert_eq!(allowed.by.policy.as_str(), "allow-all");
    }
}

#[test]
fn group_variable_resolves_to_the_attaching_group() {
    let body = statements(
        r#"{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/groups/${ironroot:Group}/*"}"#,
    );
    let via_group = attach("g", body.clone(), Attachment::Group("floor-2".into()));
    let auth = Authorizer::compile([&via_group], &dev1());
    assert_eq!(outcome(&auth, Subscribe, "groups/floor-2/#"), Allow);
    assert_eq!(outcome(&auth, Subscribe, "groups/floor-3/#"), DefaultDeny);
    // Attached directly to the device there is no group: the resource matches nothing.
    let direct = attach("g", body, Attachment::Device);
    let auth = Authorizer::compile([&direct], &dev1());
    assert_eq!(outcome(&auth, Subscribe, "groups/floor-2/#"), DefaultDeny);
    assert_eq!(auth.rule_count(), 0);
}

#[test]
fn retained_publish_needs_publish_and_retain_publish() {
    let publish_only = on_device(statements(
        r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/x"}"#,
    ));
    let auth = Authorizer::compile([&publish_only], &plain());
    assert_eq!(classify(auth.publish("x", false)), Allow);
    assert_eq!(classify(auth.publish("x", true)), DefaultDeny);
    let both = on_device(statements(
        r#"{"Effect":"Allow","Action":["iot:Publish","iot:RetainPublish"],"Resource":"topic/x"}"#,
    ));
    let auth = Authorizer::compile([&both], &plain());
    assert_eq!(classify(auth.publish("x", true)), Allow);
    let retain_only = on_device(statements(
        r#"{"Effect":"Allow","Action":"iot:RetainPublish","Resource":"topic/x"}"#,
    ));
    let auth = Authorizer::compile([&retain_only], &plain());
    assert_eq!(classify(auth.publish("x", true)), DefaultDeny);
}

#[test]
fn overlong_resource_names_are_denied_outright() {
    let p = on_device(statements(
        r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#,
    ));
    let auth = Authorizer::compile([&p], &plain());
    let long = "a".repeat(ironroot_policy::MAX_RESOURCE_NAME_BYTES + 1);
    assert_eq!(outcome(&auth, Publish, &long), TooLong);
    let max = "a".repeat(ironroot_policy::MAX_RESOURCE_NAME_BYTES);
    assert_eq!(outcome(&auth, Publish, &max), Allow);
}

#[test]
fn denial_messages_name_the_action_and_statement() {
    let p = on_device(statements(
        r#"{"Sid":"Block","Effect":"Deny","Action":"iot:Publish","Resource":"topic/x"}"#,
    ));
    let auth = Authorizer::compile([&p], &plain());
    let denied = auth.publish("x", false).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "iot:Publish denied by policy p version 1 statement 0 (Block)"
    );
    assert_eq!(
        auth.subscribe("y").unwrap_err().to_string(),
        "iot:Subscribe denied: no attached policy allows it"
    );
}
