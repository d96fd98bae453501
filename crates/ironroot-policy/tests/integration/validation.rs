//! Validation on upload: every refusal names the field and line, and says how to fix it.

use ironroot_policy::{
    ErrorKind, JsonError, Location, MAX_DOCUMENT_BYTES, MAX_DOCUMENT_CHARACTERS, PolicyDocument,
    ResourceProblem, VariableProblem,
};

struct Bad {
    text: &'static str,
    kind: fn(&ErrorKind) -> bool,
    path: &'static str,
    line: Option<usize>,
    message: &'static str,
}

const BAD: &[Bad] = &[
    Bad {
        text: "{\"Version\": \"2012-10-17\",\n \"Statement\": [\n",
        kind: |k| matches!(k, ErrorKind::Json(JsonError::UnexpectedEnd)),
        path: "",
        line: Some(3),
        message: "line 3, column 1: invalid JSON: unexpected end of input",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Effect":"Deny","Action":"iot:Connect","Resource":"*"}}"#,
        kind: |k| matches!(k, ErrorKind::Json(JsonError::DuplicateKey(key)) if key == "Effect"),
        path: "",
        line: Some(1),
        message: "duplicate key \"Effect\"",
    },
    Bad {
        text: r#"{"Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}"#,
        kind: |k| matches!(k, ErrorKind::MissingField("Version")),
        path: "",
        line: Some(1),
        message: "missing required field \"Version\"",
    },
    Bad {
        text: r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}"#,
        kind: |k| matches!(k, ErrorKind::UnsupportedVersion(v) if v == "2008-10-17"),
        path: "Version",
        line: Some(1),
        message: "use \"2012-10-17\"",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":[]}"#,
        kind: |k| matches!(k, ErrorKind::EmptyStatementList),
        path: "Statement",
        line: Some(1),
        message: "the policy has no statements",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":"x"}"#,
        kind: |k| {
            matches!(
                k,
                ErrorKind::WrongType {
                    found: "a string",
                    ..
                }
            )
        },
        path: "Statement",
        line: Some(1),
        message: "expected an object or an array of objects, found a string",
    },
    Bad {
        text: "{\"Version\":\"2012-10-17\",\"Statement\":[\n{\"Effect\":\"allow\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}",
        kind: |k| {
            matches!(
                k,
                ErrorKind::BadEffect {
                    suggestion: Some("Allow"),
                    ..
                }
            )
        },
        path: "Statement[0].Effect",
        line: Some(2),
        message: "invalid effect \"allow\"; use \"Allow\" or \"Deny\" (did you mean \"Allow\"?)",
    },
    Bad {
        text: "{\"Version\":\"2012-10-17\",\"Statement\":[\n{\"Effect\":\"Allow\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"},\n{\"Effect\":\"Allow\",\n \"Action\":[\"iot:Publish\",\n  \"iot:Publsh\"],\"Resource\":\"*\"}]}",
        kind: |k| {
            matches!(
                k,
                ErrorKind::UnknownAction {
                    suggestion: Some("iot:Publish"),
                    ..
                }
            )
        },
        path: "Statement[1].Action[1]",
        line: Some(5),
        message: "Statement[1].Action[1] (line 5, column 3): unknown action \"iot:Publsh\" (did you mean \"iot:Publish\"?)",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:GetThingShadow","Resource":"*"}}"#,
        kind: |k| matches!(k, ErrorKind::UnsupportedAction(_)),
        path: "Statement.Action",
        line: Some(1),
        message: "ironroot does not implement",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
        kind: |k| matches!(k, ErrorKind::EmptyList("Action")),
        path: "Statement.Action",
        line: Some(1),
        message: "\"Action\" is an empty list",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":"thing/x"}}"#,
        kind: |k| {
            matches!(
                k,
                ErrorKind::BadResource {
                    problem: ResourceProblem::UnsupportedType(_),
                    ..
                }
            )
        },
        path: "Statement.Resource",
        line: Some(1),
        message: "resource type \"thing\" is not an MQTT resource",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:topic/x"}}"#,
        kind: |k| {
            matches!(
                k,
                ErrorKind::BadResource {
                    problem: ResourceProblem::MalformedArn,
                    ..
                }
            )
        },
        path: "Statement.Resource",
        line: Some(1),
        message: "an ARN has the form",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/${iot:Connection.Thing.ThingTypeName}"}}"#,
        kind: |k| {
            matches!(
                k,
                ErrorKind::BadVariable {
                    problem: VariableProblem::Unsupported(_),
                    ..
                }
            )
        },
        path: "Statement.Resource",
        line: Some(1),
        message: "ironroot has no value for it",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/${iot:ClientID}"}}"#,
        kind: |k| {
            matches!(
                k,
                ErrorKind::BadVariable {
                    problem: VariableProblem::Unknown {
                        suggestion: Some("iot:ClientId"),
                        ..
                    },
                    ..
                }
            )
        },
        path: "Statement.Resource",
        line: Some(1),
        message: "did you mean \"iot:ClientId\"",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/${iot:ClientId"}}"#,
        kind: |k| {
            matches!(
                k,
                ErrorKind::BadVariable {
                    problem: VariableProblem::Unterminated,
                    ..
                }
            )
        },
        path: "Statement.Resource",
        line: Some(1),
        message: "is not closed",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iot:Publish","Resource":"*"}}"#,
        kind: |k| matches!(k, ErrorKind::UnsupportedElement("NotAction")),
        path: "Statement.NotAction",
        line: Some(1),
        message: "not supported",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"effect":"Allow","Action":"iot:Publish","Resource":"*"}}"#,
        kind: |k| {
            matches!(
                k,
                ErrorKind::UnknownField {
                    suggestion: Some("Effect"),
                    ..
                }
            )
        },
        path: "Statement.effect",
        line: Some(1),
        message: "did you mean \"Effect\"",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}"#,
        kind: |k| matches!(k, ErrorKind::UnsupportedConditionOperator(op) if op == "IpAddress"),
        path: "Statement.Condition.IpAddress.aws:SourceIp",
        line: Some(1),
        message: "unsupported condition operator \"IpAddress\"",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"StringEquals":{"aws:SourceIp":"x"}}}}"#,
        kind: |k| matches!(k, ErrorKind::UnsupportedConditionKey(_)),
        path: "Statement.Condition.StringEquals.aws:SourceIp",
        line: Some(1),
        message: "unsupported condition key",
    },
    Bad {
        text: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"StringEquals":{"iot:ClientId":5}}}}"#,
        kind: |k| {
            matches!(
                k,
                ErrorKind::WrongType {
                    found: "a number",
                    ..
                }
            )
        },
        path: "Statement.Condition.StringEquals.iot:ClientId",
        line: Some(1),
        message: "expected a string or a boolean",
    },
];

#[test]
fn refusals_name_field_line_and_fix() {
    for bad in BAD {
        let err = PolicyDocument::parse(bad.text).expect_err(bad.text);
        assert!(
            (bad.kind)(err.kind()),
            "{}: wrong kind {:?}",
            bad.text,
            err.kind()
        );
        assert_eq!(err.path(), bad.path, "{}", bad.text);
        assert_eq!(err.location().map(|l| l.line), bad.line, "{}", bad.text);
        let msg = err.to_string();
        assert!(msg.contains(bad.message), "{msg:?} lacks {:?}", bad.message);
    }
}

#[test]
fn columns_point_at_the_offending_value() {
    let text = "{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"iot:Nope\",\"Resource\":\"*\"}}";
    let err = PolicyDocument::parse(text).unwrap_err();
    let col = text.find("\"iot:Nope\"").unwrap() + 1;
    assert_eq!(
        err.location(),
        Some(Location {
            line: 1,
            column: col
        })
    );
}

#[test]
fn size_limit_counts_characters_without_whitespace() {
    let statement = r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;
    let build = |n: usize, pad: &str| {
        let body: Vec<&str> = std::iter::repeat_n(statement, n).collect();
        format!(
            "{{\"Version\":\"2012-10-17\",{pad}\"Statement\":[{}]}}",
            body.join(&format!(",{pad}"))
        )
    };
    // Find the largest statement count under the limit, then go one over.
    let mut n = 1;
    while build(n + 1, "").len() <= MAX_DOCUMENT_CHARACTERS {
        n += 1;
    }
    // Whitespace does not count: heavy indentation of an in-limit document is fine.
    let padded = build(n, "\n        ");
    assert!(padded.len() > MAX_DOCUMENT_CHARACTERS);
    PolicyDocument::parse(&padded).expect("whitespace is not counted");
    let err = PolicyDocument::parse(&build(n + 1, "")).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::TooManyCharacters {
            limit: MAX_DOCUMENT_CHARACTERS,
            ..
        }
    ));
    assert!(err.to_string().contains("split it into several policies"));
    // A byte cap bounds parsing work even for whitespace.
    let huge = format!("{}{}", " ".repeat(MAX_DOCUMENT_BYTES), build(1, ""));
    assert!(matches!(
        PolicyDocument::parse(&huge).unwrap_err().kind(),
        ErrorKind::TooManyBytes { .. }
    ));
}

#[test]
fn invalid_utf8_is_refused_with_a_location() {
    let mut bytes = b"{\"Version\":\"2012-10-17\",\n\"Statement\":\"".to_vec();
    bytes.push(0xff);
    let err = PolicyDocument::parse_bytes(&bytes).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Json(_)));
    assert_eq!(err.location().map(|l| l.line), Some(2));
}

#[test]
fn accepts_aws_documentation_policies() {
    // Shapes copied from the AWS IoT Core developer guide's examples.
    for text in [
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Publish"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/device/stats"],"Condition":{"StringEquals":{"iot:Connection.Thing.Attributes[attributeName]":"attributeValue"},"Bool":{"iot:Connection.Thing.IsAttached":"true"}}}]}"#,
        r#"{"Version":"2012-10-17","Id":"x","Statement":{"Sid":"s","Effect":"Deny","Action":"iot:*","Resource":"arn:aws:iot:*:*:topicfilter/a/*"}}"#,
    ] {
        PolicyDocument::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    }
}
