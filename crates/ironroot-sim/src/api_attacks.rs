//! The API attacks of the pre-launch suite: what an outsider or a compromised device tries
//! against the HTTPS API, driven by the server's own route table (`/api/openapi.json`), so an
//! operation added to the server is attacked without anyone remembering to add it here.
//!
//! - `api_authentication_bypass`: every documented operation that requires credentials is called
//!   with none, with a forged bearer token and (operator operations) with a device's certificate
//!   instead of an operator's; a device operation naming another device is called with this
//!   device's certificate. Refused means 401/403 for every call, while the admin token is shown to
//!   work on the same server; audited means one `auth.failed` entry per refused operator call.
//! - `api_injection`: SQL, path-traversal, NUL, script, template and over-long payloads in path
//!   parameters and query strings (with the admin token, so they reach the parsers), an injected
//!   device id in a JSON body, an over-limit body, and injected device ids as EST identities.
//!   Refused means every answer is a 4xx that leaks nothing (no stack trace, SQL error or file
//!   contents), the injected query matches nothing, and the server still answers afterwards;
//!   audited means the EST attempts left `provision.failed` entries.

use serde_json::Value;

use crate::attacks::{AUDIT_WAIT, Arena, new_key, result};
use crate::{AttackResult, Credentials};

const JSON: &str = "application/json";

/// Payloads for path parameters and query values (percent-encoded before sending).
const PAYLOADS: &[&str] = &[
    "' OR '1'='1",
    "1; DROP TABLE devices;--",
    "../../../../etc/passwd",
    "..%2f..%2fadmin.token",
    "dev\u{0}null",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
];

/// Strings that must never appear in an answer (internals or file contents leaking).
const LEAKS: &[&str] = &[
    "panicked",
    "stack backtrace",
    "sqlx",
    "SQLITE",
    "syntax error",
    "root:x:0:0",
    "/work/",
    "RUST_BACKTRACE",
];

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One documented operation.
struct Operation {
    method: String,
    path: String,
    /// Security scheme names (empty: public).
    schemes: Vec<String>,
}

impl Operation {
    fn operator(&self) -> bool {
        self.schemes.iter().any(|s| s == "adminToken")
    }

    /// The path with every `{param}` replaced by `value` (already encoded).
    fn with(&self, value: &str) -> String {
        let mut out = String::new();
        let mut rest = self.path.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end) => {
                    out.push_str(value);
                    rest = &rest[start + end + 1..];
                }
                None => {
                    rest = &rest[start..];
                    break;
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn has_params(&self) -> bool {
        self.path.contains('{')
    }

    /// A body of the kind the operation takes, so that only credentials decide: EST takes a
    /// base64 PKCS#10 (this one does not parse), the JSON enrollments a well-formed request
    /// without credentials (`enroll`), the rest of the JSON API an empty object.
    fn body<'b>(&self, enroll: &'b [u8]) -> (&'static str, &'b [u8]) {
        if self.path.starts_with("/.well-known/est/") {
            ("application/pkcs10", b"MIIBbm90LWEtY3Ny")
        } else if self.path.ends_with("/enroll") || self.path.ends_with("/reenroll") {
            (JSON, enroll)
        } else {
            (JSON, b"{}")
        }
    }
}

/// The operations of the server's OpenAPI document.
async fn operations(a: &Arena<'_>) -> Option<Vec<Operation>> {
    let resp = a
        .operator
        .raw("GET", "/api/openapi.json", Credentials::None, JSON, &[])
        .await
        .ok()?;
    let doc: Value = serde_json::from_slice(&resp.body).ok()?;
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object()? {
        for (method, op) in item.as_object()? {
            let schemes = op["security"]
                .as_array()
                .map(|alts| {
                    alts.iter()
                        .filter_map(Value::as_object)
                        .flat_map(|m| m.keys().cloned())
                        .collect()
                })
                .unwrap_or_default();
            ops.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                schemes,
            });
        }
    }
    (!ops.is_empty()).then_some(ops)
}

/// Whether the log holds at least `n` entries of `kind` within [`AUDIT_WAIT`] (entries are
/// appended after the answer is sent).
async fn audit_reaches(a: &Arena<'_>, kind: &str, n: usize) -> bool {
    let deadline = std::time::Instant::now() + AUDIT_WAIT;
    loop {
        match a.operator.audit_count(kind).await {
            Ok(c) if c >= n => return true,
            _ if std::time::Instant::now() >= deadline => return false,
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

fn leaks(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    LEAKS.iter().any(|l| text.contains(l))
}

/// `{"device_id", "csr"}` with a real CSR for `id` (a throwaway key) and no token.
fn enrollment_without_token(id: &str) -> Option<Vec<u8>> {
    let key = rcgen::KeyPair::generate().ok()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).ok()?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, id);
    let csr = params.serialize_request(&key).ok()?.pem().ok()?;
    Some(
        serde_json::json!({"device_id": id, "csr": csr})
            .to_string()
            .into_bytes(),
    )
}

/// `api_authentication_bypass` (see the module documentation).
pub(crate) async fn auth_bypass(a: &Arena<'_>) -> AttackResult {
    const NAME: &str = "api_authentication_bypass";
    let (Some(ops), Ok(dev), Ok(other)) = (
        operations(a).await,
        a.enrolled("api").await,
        a.enrolled("api-other").await,
    ) else {
        return result(NAME, false, false);
    };
    let Ok(before) = a.operator.audit_count("auth.failed").await else {
        return result(NAME, false, false);
    };
    // The same server accepts the admin token: a refusal below is about the credentials.
    let control = a
        .operator
        .raw("GET", "/api/v1/devices", Credentials::Admin, JSON, &[])
        .await;
    let mut refused = matches!(control, Ok(ref r) if r.status == 200);
    let forged = "aXJvbnJvb3QtZm9yZ2VkLXRva2VuLW5vdC1hLXNlY3JldA";
    // A well-formed enrollment for the other device, with no claim token in it.
    let Some(enroll) = enrollment_without_token(&other.id) else {
        return result(NAME, false, false);
    };
    let mut operator_refusals = 0;
    for op in ops.iter().filter(|o| !o.schemes.is_empty()) {
        // A real device id, so that only the credentials can be the reason to refuse.
        let path = op.with(&other.id);
        let mut tries = vec![Credentials::None, Credentials::Bearer(forged)];
        if op.operator() {
            tries.push(Credentials::Certificate(&dev.tls));
        } else if op.has_params() {
            // A device operation about another device, with this device's certificate.
            tries.push(Credentials::Certificate(&dev.tls));
        }
        for creds in tries {
            let (ctype, body) = op.body(&enroll);
            let status = match a.operator.raw(&op.method, &path, creds, ctype, body).await {
                Ok(r) if !leaks(&r.body) => r.status,
                Ok(_) => 0,
                // The TLS layer refusing a connection is a refusal too.
                Err(_) => 401,
            };
            if status == 401 || status == 403 {
                if op.operator() {
                    operator_refusals += 1;
                }
            } else {
                refused = false;
            }
        }
    }
    // And the server still serves.
    let alive = a
        .operator
        .raw("GET", "/api/v1/devices", Credentials::Admin, JSON, &[])
        .await;
    refused &= matches!(alive, Ok(ref r) if r.status == 200);
    let audited =
        operator_refusals > 0 && audit_reaches(a, "auth.failed", before + operator_refusals).await;
    result(NAME, refused, audited)
}

/// `api_injection` (see the module documentation).
pub(crate) async fn injection(a: &Arena<'_>) -> AttackResult {
    const NAME: &str = "api_injection";
    let Some(ops) = operations(a).await else {
        return result(NAME, false, false);
    };
    let witness = a.id("inj-witness");
    if a.register(&witness).await.is_err() {
        return result(NAME, false, false);
    }
    let Ok(before) = a.operator.audit_count("provision.failed").await else {
        return result(NAME, false, false);
    };
    let mut refused = true;
    let long = "A".repeat(4000);
    let mut values: Vec<String> = PAYLOADS.iter().map(|p| encode(p)).collect();
    values.push(long.clone());
    values.push("%FF%FE".into()); // not UTF-8
    for op in ops.iter().filter(|o| o.operator() && o.has_params()) {
        for v in &values {
            match a
                .operator
                .raw(&op.method, &op.with(v), Credentials::Admin, JSON, b"{}")
                .await
            {
                Ok(r) if (400..500).contains(&r.status) && !leaks(&r.body) => {}
                _ => refused = false,
            }
        }
    }
    // A query value: parameterised, it matches nothing.
    for p in PAYLOADS {
        let path = format!("/api/v1/audit/events?device={}", encode(p));
        match a
            .operator
            .raw("GET", &path, Credentials::Admin, JSON, &[])
            .await
        {
            Ok(r) if r.status == 200 && !leaks(&r.body) => {
                let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                if body["entries"].as_array().is_none_or(|e| !e.is_empty()) {
                    refused = false;
                }
            }
            Ok(r) if (400..500).contains(&r.status) && !leaks(&r.body) => {}
            _ => refused = false,
        }
    }
    // Bodies: an injected device id, and one byte over the body limit.
    let bodies = [
        serde_json::json!({"id": "x' OR '1'='1"})
            .to_string()
            .into_bytes(),
        vec![b' '; 65 * 1024],
    ];
    for (i, body) in bodies.iter().enumerate() {
        match a
            .operator
            .raw("POST", "/api/v1/devices", Credentials::Admin, JSON, body)
            .await
        {
            Ok(r) if (400..500).contains(&r.status) && !leaks(&r.body) => {}
            // Over the limit the server may answer 413 and close while the body is still
            // being written: the client then sees the connection cut, which is a refusal too.
            Err(crate::SimError::Https(_)) if i == 1 => {}
            _ => refused = false,
        }
    }
    // EST identities: the device id travels in HTTP Basic and in the CSR.
    let mut est_refused = 0;
    for p in PAYLOADS.iter().chain([long.as_str()].iter()) {
        let Ok(key) = new_key() else {
            refused = false;
            continue;
        };
        let Ok(csr) = ironroot_device::csr(&key, &witness) else {
            refused = false;
            continue;
        };
        // A busy server (429, the per-source limit in front of every handler) is waited out,
        // so the answer judged is the enrollment's own.
        let mut attempt = a.est.enroll_with_claim(p, "not-a-claim-token", &csr).await;
        for _ in 0..50 {
            if !matches!(
                attempt,
                Err(ironroot_device::DeviceError::Refused { status: 429, .. })
            ) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            attempt = a.est.enroll_with_claim(p, "not-a-claim-token", &csr).await;
        }
        match attempt {
            Err(ironroot_device::DeviceError::Refused { status, .. })
                if (400..500).contains(&status) =>
            {
                est_refused += 1;
            }
            _ => refused = false,
        }
    }
    // Still serving, and the witness device is still there.
    let alive = a
        .operator
        .raw(
            "GET",
            &format!("/api/v1/devices/{}", encode(&witness)),
            Credentials::Admin,
            JSON,
            &[],
        )
        .await;
    refused &= matches!(alive, Ok(ref r) if r.status == 200);
    let audited =
        est_refused > 0 && audit_reaches(a, "provision.failed", before + est_refused).await;
    result(NAME, refused, audited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("a-b_c.d~1"), "a-b_c.d~1");
        assert_eq!(encode("' OR 1"), "%27%20OR%201");
        assert_eq!(encode("../x"), "..%2Fx");
        assert_eq!(encode("\u{0}"), "%00");
    }

    #[test]
    fn path_parameters_are_substituted() {
        let op = Operation {
            method: "GET".into(),
            path: "/api/v1/devices/{id}/boot-report".into(),
            schemes: vec!["adminToken".into()],
        };
        assert_eq!(op.with("X"), "/api/v1/devices/X/boot-report");
        assert!(op.operator() && op.has_params());
        let public = Operation {
            method: "GET".into(),
            path: "/api/openapi.json".into(),
            schemes: vec![],
        };
        assert_eq!(public.with("X"), "/api/openapi.json");
        assert!(!public.operator() && !public.has_params());
    }
}
