//! The route table: every HTTP operation the server answers, each with its handler and its
//! OpenAPI 3 operation object. The axum router and `/api/openapi.json` are both built from
//! [`endpoints`], so a route cannot be served without being documented, nor documented
//! without being served. Schemas, security schemes and the title live in
//! `openapi_components.json`; path parameters are derived from the `{name}` segments.

use axum::handler::Handler;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::{Map, Value, json};

use crate::app::Shared;

mod lifecycle;

/// One HTTP operation: its method, path, handler and OpenAPI description.
pub(crate) struct Endpoint {
    /// `get` or `post` (the OpenAPI name of the method).
    pub method: &'static str,
    /// The axum path; `{id}` segments are path parameters.
    pub path: &'static str,
    /// The handler, already bound to the method.
    pub handler: MethodRouter<Shared>,
    /// The OpenAPI operation object, without its path parameters.
    pub doc: Value,
}

fn get<H, T>(path: &'static str, handler: H, doc: Value) -> Endpoint
where
    H: Handler<T, Shared>,
    T: 'static,
{
    Endpoint {
        method: "get",
        path,
        handler: on(MethodFilter::GET, handler),
        doc,
    }
}

fn post<H, T>(path: &'static str, handler: H, doc: Value) -> Endpoint
where
    H: Handler<T, Shared>,
    T: 'static,
{
    Endpoint {
        method: "post",
        path,
        handler: on(MethodFilter::POST, handler),
        doc,
    }
}

/// Every operation the server answers.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    let mut all = front_endpoints();
    all.extend(lifecycle::endpoints());
    all.extend(back_endpoints());
    all
}

/// Enrollment, device registration, claims and audit.
fn front_endpoints() -> Vec<Endpoint> {
    vec![
        get(
            "/.well-known/est/cacerts",
            crate::est::cacerts,
            json!({
                "summary": "EST (RFC 7030) CA certificates: the trusted intermediates and the root, base64 PKCS#7 certs-only",
                "security": [],
                "responses": {
                    "200": {
                        "description": "certificates",
                        "content": {"application/pkcs7-mime": {"schema": {"type": "string"}}}
                    }
                }
            }),
        ),
        post(
            "/.well-known/est/simpleenroll",
            crate::est::simpleenroll,
            json!({
                "summary": "EST first enrollment: base64 PKCS#10 in, base64 PKCS#7 certs-only out (claim token as HTTP Basic, or a factory certificate)",
                "security": [{"claimToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {"application/pkcs10": {"schema": {"type": "string"}}}
                },
                "responses": {
                    "200": {
                        "description": "issued",
                        "content": {"application/pkcs7-mime": {"schema": {"type": "string"}}}
                    },
                    "401": {"description": "refused"}
                }
            }),
        ),
        post(
            "/.well-known/est/simplereenroll",
            crate::est::simplereenroll,
            json!({
                "summary": "EST re-enrollment with the current operational certificate (or the factory certificate after expiry)",
                "security": [{"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {"application/pkcs10": {"schema": {"type": "string"}}}
                },
                "responses": {
                    "200": {
                        "description": "issued",
                        "content": {"application/pkcs7-mime": {"schema": {"type": "string"}}}
                    },
                    "401": {"description": "refused"}
                }
            }),
        ),
        get(
            "/.well-known/est/csrattrs",
            crate::est::csrattrs,
            json!({
                "summary": "EST CSR attributes: base64 DER, asking for an ECDSA P-256 key with SHA-256",
                "security": [],
                "responses": {
                    "200": {
                        "description": "attributes",
                        "content": {"application/csrattrs": {"schema": {"type": "string"}}}
                    }
                }
            }),
        ),
        post(
            "/api/v1/enroll",
            crate::est::json_enroll,
            json!({
                "summary": "First enrollment (claim token or factory certificate)",
                "security": [{"claimToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EnrollRequest"}}}
                },
                "responses": {
                    "200": {
                        "description": "issued",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Issued"}}}
                    },
                    "401": {
                        "description": "refused",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                    }
                }
            }),
        ),
        post(
            "/api/v1/reenroll",
            crate::est::json_reenroll,
            json!({
                "summary": "Rotation with the current operational certificate, or re-enrollment after expiry with the factory certificate",
                "security": [{"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EnrollRequest"}}}
                },
                "responses": {
                    "200": {
                        "description": "issued",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Issued"}}}
                    },
                    "401": {"description": "refused"}
                }
            }),
        ),
        get(
            "/api/v1/devices",
            crate::operator::list,
            json!({
                "summary": "List devices",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "parameters": [
                    {"name": "group", "in": "query", "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "schema": {"type": "string"}},
                    {"name": "owner", "in": "query", "schema": {"type": "string"}},
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": {
                        "description": "devices",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}}
                            }
                        }
                    }
                }
            }),
        ),
        post(
            "/api/v1/devices",
            crate::operator::add,
            json!({
                "summary": "Register a device",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewDevice"}}}
                },
                "responses": {
                    "201": {
                        "description": "registered",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Device"}}}
                    },
                    "409": {"description": "exists"}
                }
            }),
        ),
        post(
            "/api/v1/devices/import",
            crate::operator::import,
            json!({
                "summary": "Bulk registration: JSON array of NewDevice, or CSV with header id[,groups(;-separated)][,owner][,attribute columns...]",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/NewDevice"}}
                        },
                        "text/csv": {"schema": {"type": "string"}}
                    }
                },
                "responses": {
                    "200": {
                        "description": "result",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ImportResult"}}
                        }
                    }
                }
            }),
        ),
        get(
            "/api/v1/audit/events",
            crate::operator::audit_events,
            json!({
                "summary": "Audit log entries (the JSON form of `ironroot audit show --json`), filtered",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "parameters": [
                    {"name": "device", "in": "query", "schema": {"type": "string"}, "description": "only entries about this device"},
                    {"name": "type", "in": "query", "schema": {"type": "string"}, "description": "an event type (mqtt.denied) or area (mqtt)"},
                    {"name": "after", "in": "query", "schema": {"type": "integer"}, "description": "only entries after this index (pass next_after to page)"},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}}
                ],
                "responses": {
                    "200": {"description": "{entries: [...], next_after}", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "400": {"description": "unknown event type"}
                }
            }),
        ),
        get(
            "/api/v1/devices/{id}",
            crate::operator::show,
            json!({
                "summary": "Show a device and its certificates",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "device",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Device"}}}
                    },
                    "404": {"description": "unknown"}
                }
            }),
        ),
        post(
            "/api/v1/devices/{id}/boot-report",
            crate::reports::post_boot_report,
            json!({
                "summary": "The device reports what secure boot decided: running firmware, security counters, measured-boot log (replayed to its PCR), refused images (each audited as firmware.refused)",
                "security": [{"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BootReport"}}}
                },
                "responses": {
                    "200": {"description": "recorded"},
                    "400": {"description": "malformed, or the measurements do not replay to the PCR"},
                    "401": {"description": "no operational device certificate"},
                    "403": {"description": "the certificate is another device's"}
                }
            }),
        ),
        get(
            "/api/v1/devices/{id}/boot-report",
            crate::reports::get_boot_report,
            json!({
                "summary": "The device's latest boot report and when it was received (report null before the first)",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "report",
                        "content": {"application/json": {"schema": {"type": "object", "properties": {
                            "device": {"type": "string"},
                            "received_at": {"type": "integer"},
                            "report": {"$ref": "#/components/schemas/BootReport"}
                        }}}}
                    },
                    "404": {"description": "unknown device"}
                }
            }),
        ),
        post(
            "/api/v1/devices/{id}/claim",
            crate::operator::claim_device,
            json!({
                "summary": "Mint a one-time claim token for the device (shown once)",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClaimRequest"}}}
                },
                "responses": {
                    "200": {
                        "description": "token",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Claim"}}}
                    }
                }
            }),
        ),
        post(
            "/api/v1/groups/{name}/claim",
            crate::operator::claim_group,
            json!({
                "summary": "Mint a claim token usable by members of a group, quota times",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClaimRequest"}}}
                },
                "responses": {
                    "200": {
                        "description": "token",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Claim"}}}
                    }
                }
            }),
        ),
    ]
}

/// OCSP, metrics, the API document and the health check.
fn back_endpoints() -> Vec<Endpoint> {
    vec![
        post(
            "/ocsp",
            crate::ocsp::post,
            json!({
                "summary": "OCSP (RFC 6960): status of device, operator and factory certificates (good, revoked with time and reason, unknown), signed by the issuing CA's delegated responder (in `certs`); nonce echoed; at most 32 CertIDs, 64 KiB",
                "security": [],
                "requestBody": {
                    "required": true,
                    "content": {"application/ocsp-request": {"schema": {"type": "string", "format": "binary"}}}
                },
                "responses": {
                    "200": {
                        "description": "an OCSPResponse (successful, malformedRequest, unauthorized, tryLater or internalError)",
                        "content": {"application/ocsp-response": {"schema": {"type": "string", "format": "binary"}}}
                    },
                    "413": {"description": "body over the limit"},
                    "415": {"description": "not application/ocsp-request"}
                }
            }),
        ),
        get(
            "/ocsp/{request}",
            crate::ocsp::get,
            json!({
                "summary": "OCSP GET form (RFC 6960 Appendix A.1): the base64 DER request (standard alphabet percent-encoded, or URL-safe) as one path segment",
                "security": [],
                "responses": {
                    "200": {
                        "description": "an OCSPResponse",
                        "content": {"application/ocsp-response": {"schema": {"type": "string", "format": "binary"}}}
                    }
                }
            }),
        ),
        get(
            "/metrics",
            crate::metrics::metrics,
            json!({
                "summary": "Node metrics in the Prometheus text format (0.0.4): MQTT connections, connects, refusals by reason, messages by QoS, drops by reason, queue depths, backpressure, configured rates, TLS handshake latency",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}}
                    },
                    "401": {"description": "not an operator"}
                }
            }),
        ),
        get(
            "/api/openapi.json",
            openapi,
            json!({
                "summary": "This document (OpenAPI 3), generated from the server's route table",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the document",
                        "content": {"application/json": {"schema": {"type": "object"}}}
                    }
                }
            }),
        ),
        get(
            "/healthz",
            healthz,
            json!({
                "summary": "Liveness: answers ok",
                "security": [],
                "responses": {
                    "200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}
                }
            }),
        ),
    ]
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn openapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| document(&endpoints()).to_string());
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// The `{name}` segments of an axum path.
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// The OpenAPI 3 document of `endpoints`: the components file plus one path item per path.
pub(crate) fn document(endpoints: &[Endpoint]) -> Value {
    let mut doc: Value = serde_json::from_str(include_str!("openapi_components.json"))
        .expect("openapi_components.json is valid JSON (checked by a unit test)");
    let mut paths = Map::new();
    for e in endpoints {
        let mut op = e.doc.clone();
        let mut params: Vec<Value> = path_params(e.path)
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        if let Some(Value::Array(rest)) = op.get_mut("parameters").map(Value::take) {
            params.extend(rest);
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        let item = paths
            .entry(e.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item[e.method] = op;
    }
    doc["paths"] = Value::Object(paths);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(s)) => out.push(s),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_endpoint_is_in_the_document_once_and_the_document_is_openapi_3() {
        let endpoints = endpoints();
        let doc = document(&endpoints);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert!(doc["info"]["title"].is_string());
        let mut seen = std::collections::HashSet::new();
        for e in &endpoints {
            assert!(
                seen.insert((e.method, e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
            let op = &doc["paths"][e.path][e.method];
            assert!(
                op["summary"].is_string(),
                "{} {}: no summary",
                e.method,
                e.path
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty());
            for code in responses.keys() {
                assert!(
                    code.parse::<u16>().is_ok(),
                    "{} {}: {code}",
                    e.method,
                    e.path
                );
            }
            // Path parameters are exactly the path's segments.
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, path_params(e.path).collect::<Vec<_>>());
            for scheme in op["security"].as_array().into_iter().flatten() {
                for name in scheme.as_object().unwrap().keys() {
                    assert!(
                        doc["components"]["securitySchemes"][name].is_object(),
                        "unknown security scheme {name}"
                    );
                }
            }
        }
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, endpoints.len());
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").expect(r);
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling {r}"
            );
        }
    }

    /// The routes issue 12 found missing from the hand-written document.
    #[test]
    fn quarantine_and_release_are_documented() {
        let doc = document(&endpoints());
        for path in [
            "/api/v1/devices/{id}/quarantine",
            "/api/v1/devices/{id}/release",
        ] {
            assert!(doc["paths"][path]["post"]["summary"].is_string(), "{path}");
        }
    }
}
