//! The built-in default device and quarantine policies grant exactly what they document.

use ironroot_policy::{Action::*, Authorizer, ConnectionContext, builtin, lint};

use crate::support::*;

#[test]
fn default_device_policy_grants_exactly_its_own_topics() {
    let auth = Authorizer::compile([&builtin::default_device_policy()], &device("dev1"));
    let table = [
        (Connect, "dev1", Allow),
        (Publish, "devices/dev1/telemetry", Allow),
        (Subscribe, "devices/dev1/commands", Allow),
        (Receive, "devices/dev1/commands", Allow),
        // Nothing else of its own...
        (Publish, "devices/dev1/commands", DefaultDeny),
        (Publish, "devices/dev1/status", DefaultDeny),
        (Publish, "devices/dev1/telemetry/x", DefaultDeny),
        (RetainPublish, "devices/dev1/telemetry", DefaultDeny),
        (Subscribe, "devices/dev1/telemetry", DefaultDeny),
        (Subscribe, "devices/dev1/#", DefaultDeny),
        (Subscribe, "devices/dev1/+", DefaultDeny),
        (Receive, "devices/dev1/telemetry", DefaultDeny),
        // ...and nothing of anyone else's.
        (Publish, "devices/dev2/telemetry", DefaultDeny),
        (Subscribe, "devices/dev2/commands", DefaultDeny),
        (Subscribe, "devices/+/commands", DefaultDeny),
        (Subscribe, "#", DefaultDeny),
        (Subscribe, "$SYS/#", DefaultDeny),
        (Receive, "devices/dev2/commands", DefaultDeny),
    ];
    for (action, name, expected) in table {
        assert_eq!(outcome(&auth, action, name), expected, "{action} {name}");
    }
    assert_eq!(
        classify(auth.publish("devices/dev1/telemetry", true)),
        DefaultDeny
    );
}

#[test]
fn default_device_policy_connects_only_as_the_thing_name() {
    let p = builtin::default_device_policy();
    // Client id differs from the registry name.
    let ctx = ConnectionContext::new("dev2").with_thing("dev1", [("a", "b")]);
    let auth = Authorizer::compile([&p], &ctx);
    assert_eq!(classify(auth.connect()), DefaultDeny);
    // A certificate that belongs to no registered device gets nothing at all.
    let auth = Authorizer::compile([&p], &ConnectionContext::new("dev1"));
    assert_eq!(classify(auth.connect()), DefaultDeny);
    assert_eq!(
        outcome(&auth, Publish, "devices/dev1/telemetry"),
        DefaultDeny
    );
    assert_eq!(auth.rule_count(), 0);
}

#[test]
fn quarantine_allows_only_the_status_topic() {
    let auth = builtin::quarantined(&device("dev1"));
    assert_eq!(classify(auth.connect()), Allow);
    assert_eq!(classify(auth.publish("devices/dev1/status", false)), Allow);
    assert_eq!(
        classify(auth.publish("devices/dev1/status", true)),
        ExplicitDeny
    );
    assert_eq!(
        outcome(&auth, Publish, "devices/dev1/telemetry"),
        DefaultDeny
    );
    assert_eq!(outcome(&auth, Publish, "devices/dev2/status"), DefaultDeny);
    assert_eq!(
        outcome(&auth, Subscribe, "devices/dev1/commands"),
        ExplicitDeny
    );
    assert_eq!(
        outcome(&auth, Receive, "devices/dev1/commands"),
        ExplicitDeny
    );
}

#[test]
fn quarantine_added_to_other_policies_still_blocks_subscriptions_and_deliveries() {
    // The broker replaces policies with `quarantined`; if someone attaches the quarantine
    // policy beside a permissive one, its Deny statements still cut reads.
    let permissive = on_device(statements(
        r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#,
    ));
    let auth = Authorizer::compile(
        [&permissive, &builtin::quarantine_policy()],
        &device("dev1"),
    );
    assert_eq!(outcome(&auth, Subscribe, "#"), ExplicitDeny);
    assert_eq!(
        outcome(&auth, Receive, "devices/dev2/commands"),
        ExplicitDeny
    );
}

#[test]
fn built_in_policies_lint_clean() {
    for p in [
        builtin::default_device_policy(),
        builtin::quarantine_policy(),
    ] {
        let findings = lint(&p.document);
        assert!(findings.is_empty(), "{}: {findings:#?}", p.name);
    }
}
