//! Unit tests of `ironroot audit` (filters, time parsing, text output).

use super::*;

#[test]
fn since_takes_ages_and_rfc3339() {
    let now = Timestamp::now().secs();
    let t = parse_since("24h").unwrap().secs();
    assert!((now - 86_400 - t).abs() <= 2, "{t}");
    assert_eq!(parse_since("2024-05-01").unwrap().secs(), 1_714_521_600);
    assert_eq!(
        parse_since("2024-05-01T01:00:00Z").unwrap().secs(),
        1_714_525_200
    );
    assert!(parse_since("yesterday").is_err());
    assert!(parse_since("-5m").is_err());
    assert!(parse_since("99999999999999999d").is_err());
}

#[test]
fn filters_by_device_type_and_area() {
    let e = Event::new(EventKind::CertIssued, "operator:alice").subject("certificate", "01ab");
    let e = e.detail("device", "dev-1");
    let f = |device: Option<&str>, ty: Option<&str>| EventFilter {
        device: device.map(str::to_owned),
        event_type: ty.map(|t| parse_type_filter(t).unwrap()),
        since: None,
    };
    assert!(f(Some("dev-1"), None).matches(&e));
    assert!(!f(Some("dev-2"), None).matches(&e));
    assert!(f(None, Some("cert")).matches(&e));
    assert!(f(None, Some("cert.issued")).matches(&e));
    assert!(!f(None, Some("cert.revoked")).matches(&e));
    let by_device = Event::new(EventKind::MqttConnect, "device:dev-2");
    assert!(f(Some("dev-2"), Some("mqtt")).matches(&by_device));
}

#[test]
fn unknown_type_names_are_refused_with_the_valid_ones() {
    for bad in ["cer", "mqtt.connected", "policy.created"] {
        let err = parse_type_filter(bad).unwrap_err();
        assert!(
            err.contains("mqtt.connect,") && err.contains("cert"),
            "{err}"
        );
        assert!(parse_kind(bad).unwrap_err().contains("operator.note"));
    }
    assert_eq!(
        parse_type_filter("policy.create").unwrap(),
        TypeFilter::Kind(EventKind::PolicyCreate)
    );
    assert_eq!(
        parse_kind("operator.note").unwrap(),
        EventKind::OperatorNote
    );
}

#[test]
fn text_lines_neutralise_control_characters() {
    let e = Event::new(EventKind::OperatorNote, "operator:a\u{1b}[31m").detail("k", "v\nw");
    let line = text_line(7, &e);
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(line.starts_with("#7 "));
}
