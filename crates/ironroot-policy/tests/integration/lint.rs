//! Every lint fires on the smallest policy that deserves it, and not on its fixed form.

use ironroot_policy::{LintCode, PolicyDocument, Severity, lint};

use crate::support::statements;

fn codes(body: &str) -> Vec<LintCode> {
    lint(&statements(body))
        .into_iter()
        .map(|f| f.code)
        .collect()
}

#[test]
fn each_code_fires_and_its_fix_is_clean() {
    use LintCode::*;
    let cases: &[(LintCode, &str, &str)] = &[
        (
            AllowAllActions,
            r#"{"Effect":"Allow","Action":"iot:*","Resource":"topic/devices/${iot:Connection.Thing.ThingName}/x"}"#,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:Connection.Thing.ThingName}/x"}"#,
        ),
        (
            TopicCatchAll,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/*"}"#,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:Connection.Thing.ThingName}/telemetry"}"#,
        ),
        (
            TopicCatchAll,
            r##"{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/#"},{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/devices/${iot:ClientId}/x"}"##,
            r##"{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/${iot:ClientId}/#"},{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/devices/${iot:ClientId}/x"}"##,
        ),
        (
            UnboundClientId,
            r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"client/*"}"#,
            r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"}"#,
        ),
        (
            BroadGrantWithoutDeny,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/*"}"#,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/*"},{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/devices/admin/*"}"#,
        ),
        (
            BroadGrantWithoutDeny,
            r#"{"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/devices/+/commands","topic/devices/${iot:ClientId}/commands"]}"#,
            r#"{"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/devices/${iot:ClientId}/commands","topic/devices/${iot:ClientId}/commands"]}"#,
        ),
        (
            WildcardAfterVariable,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:ClientId}*"}"#,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:ClientId}/*"}"#,
        ),
        (
            WildcardBeforeVariable,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/x/*${iot:ClientId}"}"#,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:ClientId}/x"}"#,
        ),
        (
            DenySubscribeWithoutReceive,
            r#"{"Effect":"Deny","Action":"iot:Subscribe","Resource":"topicfilter/a/restricted/#"}"#,
            r#"{"Effect":"Deny","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/a/restricted/#","topic/a/restricted/*"]}"#,
        ),
        (
            DenyWithOptionalVariable,
            r#"{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/${iot:Connection.Thing.Attributes[zone]}/x"}"#,
            r#"{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/zones/x"}"#,
        ),
        (
            ActionResourceMismatch,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topicfilter/devices/x"}"#,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/x"}"#,
        ),
        (
            ReceiveWithoutSubscribe,
            r#"{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/a"}"#,
            r#"{"Effect":"Allow","Action":["iot:Receive","iot:Subscribe"],"Resource":["topic/a","topicfilter/a"]}"#,
        ),
        (
            SubscribeWithoutReceive,
            r#"{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/a"}"#,
            r#"{"Effect":"Allow","Action":["iot:Receive","iot:Subscribe"],"Resource":["topic/a","topicfilter/a"]}"#,
        ),
        (
            RetainPublishWithoutPublish,
            r#"{"Effect":"Allow","Action":"iot:RetainPublish","Resource":"topic/a"}"#,
            r#"{"Effect":"Allow","Action":["iot:RetainPublish","iot:Publish"],"Resource":"topic/a"}"#,
        ),
    ];
    for (code, bad, good) in cases {
        assert!(
            codes(bad).contains(code),
            "{code} should fire on {bad}: {:?}",
            codes(bad)
        );
        assert!(
            !codes(good).contains(code),
            "{code} should not fire on {good}: {:?}",
            codes(good)
        );
    }
    // Every code is covered by the table.
    for code in LintCode::ALL {
        assert!(
            cases.iter().any(|(c, _, _)| *c == code),
            "no case for {code}"
        );
    }
}

#[test]
fn findings_carry_location_explanation_and_fix() {
    let doc = PolicyDocument::parse(
        "{\"Version\":\"2012-10-17\",\"Statement\":[\n  {\"Effect\":\"Allow\",\"Action\":\"iot:*\",\n   \"Resource\":\"*\"}]}",
    )
    .unwrap();
    let findings = lint(&doc);
    let all = findings
        .iter()
        .find(|f| f.code == LintCode::AllowAllActions)
        .unwrap();
    assert_eq!(all.severity, Severity::High);
    assert_eq!(all.statement, Some(0));
    assert_eq!(all.location.map(|l| l.line), Some(2));
    let catch_all = findings
        .iter()
        .find(|f| f.code == LintCode::TopicCatchAll)
        .unwrap();
    assert_eq!(
        catch_all.location.map(|l| (l.line, l.column)),
        Some((3, 15))
    );
    assert!(catch_all.message.contains("\"*\""));
    assert!(!catch_all.fix.is_empty());
    assert!(!LintCode::TopicCatchAll.explanation().is_empty());
    let unbound = findings
        .iter()
        .find(|f| f.code == LintCode::UnboundClientId);
    assert!(
        unbound.is_some(),
        "Resource * with iot:Connect is an unbound client id"
    );
}

#[test]
fn severities_are_ordered() {
    assert!(Severity::High > Severity::Warning && Severity::Warning > Severity::Info);
    assert_eq!(LintCode::TopicCatchAll.name(), "topic-catch-all");
}
