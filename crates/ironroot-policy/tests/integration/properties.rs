//! Properties checked on generated policies and requests.
//!
//! `decisions_match_a_regex_model` compares the engine with an independent model: a naive
//! evaluator in which every resource is translated into a `regex` crate expression.

use proptest::prelude::*;
use regex::Regex;

use ironroot_policy::{Action, Authorizer, ConnectionContext, PolicyDocument, lint};

use crate::support::*;

const ACTIONS: [Action; 5] = Action::ALL;

/// Short strings over an alphabet rich in characters that matter to the matcher.
fn name(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec!['a', 'b', '/', '+', '#', '*', '?', 'é', '$']),
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec!["a", "b", "/", "+", "#", "*", "?", "é"]),
        1..7,
    )
    .prop_map(|v| v.concat())
}

fn resource() -> impl Strategy<Value = String> {
    let ty = prop::sample::select(vec!["topic", "topicfilter", "client", "*", "to*", "t?pic"]);
    prop_oneof![
        4 => (ty, pattern()).prop_map(|(t, p)| format!("{t}/{p}")),
        1 => Just("*".to_owned()),
    ]
}

#[derive(Debug, Clone)]
struct GenStatement {
    deny: bool,
    actions: Vec<Action>,
    resources: Vec<String>,
    arn: bool,
}

fn statement() -> impl Strategy<Value = GenStatement> {
    (
        any::<bool>(),
        proptest::sample::subsequence(ACTIONS.to_vec(), 1..=5),
        proptest::collection::vec(resource(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(deny, actions, resources, arn)| GenStatement {
            deny,
            actions,
            resources,
            arn,
        })
}

fn to_json(statements: &[GenStatement]) -> String {
    let body: Vec<String> = statements
        .iter()
        .map(|s| {
            let actions: Vec<String> = s
                .actions
                .iter()
                .map(|a| format!("\"{}\"", a.name()))
                .collect();
            let resources: Vec<String> = s
                .resources
                .iter()
                .map(|r| {
                    let r = if s.arn {
                        format!("arn:aws:iot:us-east-1:123:{r}")
                    } else {
                        r.clone()
                    };
                    serde_json::to_string(&r).unwrap()
                })
                .collect();
            format!(
                r#"{{"Effect":"{}","Action":[{}],"Resource":[{}]}}"#,
                if s.deny { "Deny" } else { "Allow" },
                actions.join(","),
                resources.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        body.join(",")
    )
}

/// IAM glob → anchored regex, written independently of the engine's matcher.
fn glob_regex(glob: &str) -> Regex {
    let mut re = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str("(?s:.*)"),
            '?' => re.push_str("(?s:.)"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).unwrap()
}

/// The model: explicit Deny wins, then Allow, else deny.
fn model(statements: &[GenStatement], action: Action, name: &str) -> Outcome {
    let text = format!("{}/{name}", action.resource_type().name());
    let hit = |s: &GenStatement| {
        s.actions.contains(&action) && s.resources.iter().any(|r| glob_regex(r).is_match(&text))
    };
    if statements.iter().any(|s| s.deny && hit(s)) {
        ExplicitDeny
    } else if statements.iter().any(|s| !s.deny && hit(s)) {
        Allow
    } else {
        DefaultDeny
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decisions_match_a_regex_model(
        stmts in proptest::collection::vec(statement(), 1..6),
        action in prop::sample::select(ACTIONS.to_vec()),
        request in name(8),
    ) {
        let json = to_json(&stmts);
        let doc = PolicyDocument::parse(&json);
        prop_assume!(doc.is_ok());
        let p = on_device(std::sync::Arc::new(doc.unwrap()));
        let auth = Authorizer::compile([&p], &ConnectionContext::new("c"));
        prop_assert_eq!(outcome(&auth, action, &request), model(&stmts, action, &request), "{}", json);
    }

    #[test]
    fn deny_always_wins_whatever_else_is_attached(
        stmts in proptest::collection::vec(statement(), 1..6),
        action in prop::sample::select(ACTIONS.to_vec()),
        request in name(8),
    ) {
        // Add a Deny that matches the request to a random policy: the result must be an
        // explicit deny, in any attachment order.
        let doc = PolicyDocument::parse(&to_json(&stmts));
        prop_assume!(doc.is_ok());
        let others = on_device(std::sync::Arc::new(doc.unwrap()));
        // Escape the request so that the Deny names exactly it.
        let mut escaped = String::new();
        for c in request.chars() {
            match c {
                '*' => escaped.push_str("${*}"),
                '?' => escaped.push_str("${?}"),
                '$' => escaped.push_str("${$}"),
                c => escaped.push(c),
            }
        }
        prop_assume!(!escaped.is_empty());
        let deny_json = format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Deny","Action":"{}","Resource":{}}}}}"#,
            action.name(),
            serde_json::to_string(&format!("{}/{escaped}", action.resource_type().name())).unwrap()
        );
        let deny = on_device(doc_or_skip(&deny_json)?);
        let ctx = ConnectionContext::new("c");
        for order in [[&others, &deny], [&deny, &others]] {
            let auth = Authorizer::compile(order, &ctx);
            prop_assert_eq!(outcome(&auth, action, &request), ExplicitDeny);
        }
    }

    #[test]
    fn wildcard_characters_in_ids_never_widen_access(
        id in name(6),
        other in name(6),
        suffix in name(6),
    ) {
        prop_assume!(!id.is_empty());
        let p = on_device(statements(concat!(
            r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:ClientId}"},"#,
            r#"{"Effect":"Allow","Action":"iot:Publish","Resource":["topic/devices/${iot:ClientId}/telemetry","topic/devices/${iot:Connection.Thing.ThingName}/x/*"]},"#,
            r#"{"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":["topicfilter/devices/${iot:Connection.Thing.Attributes[alias]}/commands","topic/devices/${iot:ClientId}/commands"]}"#,
        )));
        let ctx = ConnectionContext::new(id.clone()).with_thing(id.clone(), [("alias", id.clone())]);
        let auth = Authorizer::compile([&p], &ctx);
        let safe = !id.contains(['/', '+', '#']);
        let own = |t: &str| t == format!("devices/{id}/telemetry");
        let own_x = |t: &str| t.starts_with(&format!("devices/{id}/x/"));
        // Candidate requests: near misses built from the id and arbitrary ones.
        let candidates = [
            format!("devices/{other}/telemetry"),
            format!("devices/{id}{suffix}/telemetry"),
            format!("devices/{id}/x/{suffix}"),
            format!("devices/{other}/x/{suffix}"),
            format!("devices/{id}/telemetry"),
            format!("devices/{other}/commands"),
            format!("devices/{id}/commands"),
            other.clone(),
        ];
        for t in &candidates {
            if outcome(&auth, Action::Publish, t) == Allow {
                prop_assert!(safe && (own(t) || own_x(t)), "id {id:?} published to {t:?}");
            }
            if outcome(&auth, Action::Subscribe, t) == Allow {
                prop_assert!(safe && *t == format!("devices/{id}/commands"), "id {id:?} subscribed {t:?}");
            }
            if outcome(&auth, Action::Receive, t) == Allow {
                prop_assert!(safe && *t == format!("devices/{id}/commands"), "id {id:?} received {t:?}");
            }
        }
        if outcome(&auth, Action::Connect, &other) == Allow {
            prop_assert_eq!(&other, &id);
        }
        // And the literal own topics do work for safe ids.
        if safe {
            prop_assert_eq!(outcome(&auth, Action::Publish, &format!("devices/{id}/telemetry")), Allow);
            prop_assert_eq!(outcome(&auth, Action::Subscribe, &format!("devices/{id}/commands")), Allow);
        }
        prop_assert_eq!(outcome(&auth, Action::Connect, &id), Allow);
    }

    #[test]
    fn parsing_linting_and_deciding_never_panic_on_arbitrary_text(text in "\\PC{0,300}") {
        if let Ok(doc) = PolicyDocument::parse(&text) {
            let _ = lint(&doc);
        }
    }

    #[test]
    fn never_panics_on_policy_shaped_input(
        effect in prop::sample::select(vec!["Allow", "Deny", "allow", ""]),
        action in "(iot:)?[A-Za-z*?]{0,12}",
        res in "[a-z*?/+#${}():\\[\\]. A-Z]{0,40}",
        cond_op in "[A-Za-z:]{0,24}",
        cond_key in "(iot:|aws:|ironroot:)?[A-Za-z.\\[\\]]{0,30}",
        cond_val in "[a-z*?${}:.]{0,12}",
        id in name(6),
        request in name(10),
    ) {
        let json = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":{},"Action":{},"Resource":{},"Condition":{{{}:{{{}:{}}}}}}}]}}"#,
            serde_json::to_string(effect).unwrap(),
            serde_json::to_string(&action).unwrap(),
            serde_json::to_string(&res).unwrap(),
            serde_json::to_string(&cond_op).unwrap(),
            serde_json::to_string(&cond_key).unwrap(),
            serde_json::to_string(&cond_val).unwrap(),
        );
        if let Ok(doc) = PolicyDocument::parse(&json) {
            let _ = lint(&doc);
            let p = on_device(std::sync::Arc::new(doc));
            let ctx = ConnectionContext::new(id.clone()).with_thing(id, [("k", "v")]);
            let auth = Authorizer::compile([&p], &ctx);
            for a in ACTIONS {
                let _ = auth.authorize(a, &request);
            }
        }
    }
}

fn doc_or_skip(json: &str) -> Result<std::sync::Arc<PolicyDocument>, TestCaseError> {
    PolicyDocument::parse(json)
        .map(std::sync::Arc::new)
        .map_err(|e| TestCaseError::reject(format!("{e}")))
}
