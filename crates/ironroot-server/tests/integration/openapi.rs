//! `/api/openapi.json` is generated from the route table (issue 12, defect 2): it is a valid
//! OpenAPI 3 document, it lists the quarantine and release routes the hand-written one
//! missed, and every operation it documents answers on a running server — with the admin
//! token, with something other than 404 or 405 — while a path it does not document is 404.

use std::collections::BTreeSet;

use crate::harness::{Db, Fixture, status_and_body};

/// A concrete path for a documented one (`{id}` → a registered device).
fn concrete(path: &str) -> String {
    path.replace("{id}", "doc-dev")
        .replace("{name}", "doc-group")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_and_the_document_is_openapi_3() {
    let fx = Fixture::start(Db::Sqlite, |_| {}).await;
    let out = fx.curl(&[&fx.url("/api/openapi.json")]).await;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/devices/{id}/quarantine",
        "/api/v1/devices/{id}/release",
        "/.well-known/est/simpleenroll",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }

    let (status, body) = fx
        .admin(
            "POST",
            "/api/v1/devices",
            Some(r#"{"id":"doc-dev","groups":["doc-group"]}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations.insert((path.clone(), method.to_uppercase()));
        }
    }
    // Decommission last: it ends the device that the other calls use.
    let mut ordered: Vec<_> = operations.iter().collect();
    ordered.sort_by_key(|(p, _)| p.ends_with("/decommission"));
    for (path, method) in ordered {
        let url = fx.url(&concrete(path));
        let auth = format!("Authorization: Bearer {}", fx.admin_token);
        let mut args = vec!["-X", method.as_str(), "-H", &auth, "-w", "\n%{http_code}"];
        if method == "POST" {
            args.extend([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                "{}",
            ]);
        }
        args.push(&url);
        let (status, body) = status_and_body(&fx.curl(&args).await);
        assert!(
            status != 404 && status != 405 && status != 0,
            "{method} {path} is documented but answers {status}: {body}"
        );
    }
    // The same server refuses what is not in the table.
    let (status, _) = fx.admin("GET", "/api/v1/undocumented", None).await;
    assert_eq!(status, 404);
    let (status, _) = fx.admin("DELETE", "/api/v1/devices", None).await;
    assert!(status == 404 || status == 405, "{status}");
    fx.stop().await;
}
