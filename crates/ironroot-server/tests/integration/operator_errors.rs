//! Issue 12, defect 8: operator mistakes get an error naming the field and what to do (curl
//! against a running server); devices keep the uniform answers.

use crate::harness::*;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

async fn operator_errors(db: Db) {
    let fx = Fixture::start(db, |_| {}).await;

    // The valid request is accepted, and audited through the fleet service.
    let (s, body) = fx
        .admin(
            "POST",
            "/api/v1/devices",
            Some(r#"{"id":"op-1","groups":["line-b"]}"#),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert!(
        fx.audit_events()
            .await
            .iter()
            .any(|e| e.event_type == "device.added"
                && e.subject.id == "op-1"
                && e.outcome == ironroot_audit::Outcome::Success)
    );

    // Bad JSON.
    let (s, body) = fx.admin("POST", "/api/v1/devices", Some("{not json")).await;
    let v = json(&body);
    assert_eq!(s, 400, "{body}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{body}"
    );
    assert_eq!(v["field"], "body");
    assert!(
        v["hint"].as_str().unwrap().contains(r#""id":"sensor-1""#),
        "{body}"
    );

    // Missing field.
    let (s, body) = fx
        .admin("POST", "/api/v1/devices", Some(r#"{"groups":[]}"#))
        .await;
    assert_eq!(
        (s, json(&body)["field"].as_str()),
        (400, Some("id")),
        "{body}"
    );

    // Bad value.
    let (s, body) = fx
        .admin("POST", "/api/v1/devices", Some(r#"{"id":"bad id"}"#))
        .await;
    let v = json(&body);
    assert_eq!(s, 400, "{body}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid device id"),
        "{body}"
    );
    assert_eq!(v["field"], "id");
    assert_eq!(v["hint"], "use 1-128 characters of a-z A-Z 0-9 . _ : -");
    let (s, body) = fx
        .admin(
            "POST",
            "/api/v1/devices",
            Some(r#"{"id":"op-2","groups":["a/b"]}"#),
        )
        .await;
    assert_eq!(
        (s, json(&body)["field"].as_str()),
        (400, Some("groups")),
        "{body}"
    );

    // Duplicate and unknown device.
    let (s, body) = fx
        .admin("POST", "/api/v1/devices", Some(r#"{"id":"op-1"}"#))
        .await;
    assert_eq!(
        (s, json(&body)["field"].as_str()),
        (409, Some("id")),
        "{body}"
    );
    let (s, body) = fx
        .admin("POST", "/api/v1/devices/nobody/claim", Some("{}"))
        .await;
    let v = json(&body);
    assert_eq!(
        (s, v["error"].as_str()),
        (404, Some("unknown device")),
        "{body}"
    );
    assert!(v["hint"].as_str().unwrap().contains("POST /api/v1/devices"));

    // Out-of-range claim lifetime names its field.
    let (s, body) = fx
        .admin(
            "POST",
            "/api/v1/devices/op-1/claim",
            Some(r#"{"ttl_seconds":0}"#),
        )
        .await;
    assert_eq!(
        (s, json(&body)["field"].as_str()),
        (400, Some("ttl_seconds")),
        "{body}"
    );
    let (s, body) = fx
        .admin("POST", "/api/v1/devices/op-1/claim", Some("{}"))
        .await;
    assert_eq!(s, 200, "{body}");

    // A device's refusal stays uniform: no field, no hint.
    let url = fx.url("/.well-known/est/simpleenroll");
    let (s, body) = status_and_body(
        &fx.curl(&[
            "-w",
            "\n%{http_code}",
            "--data-binary",
            "AAAA",
            "-H",
            "Content-Type: application/pkcs10",
            "-u",
            "op-1:wrong-token",
            &url,
        ])
        .await,
    );
    // The CSR is checked before the credential (a typo never burns a token), so this malformed
    // one gets the uniform 400: the same body for every device mistake, no field, no hint.
    assert_eq!((s, body.as_str()), (400, r#"{"error":"bad request"}"#));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_operator_errors_name_the_field_sqlite() {
    operator_errors(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_operator_errors_name_the_field_postgres() {
    operator_errors(Db::Postgres).await;
}
