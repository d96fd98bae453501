//! The few operator calls the simulator makes through the server's API (bearer token).

use ironroot_device::{DeviceTls, TrustAnchor};
use ironroot_https_client::{Endpoint, HttpsClient, Response};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::SimError;

/// Devices registered per import request (well under the API's 64 KiB body limit).
const IMPORT_CHUNK: usize = 500;

/// What a raw request ([`Operator::raw`]) authenticates with: the API attacks try each.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Credentials<'a> {
    /// The operator's admin token.
    Admin,
    /// Nothing at all.
    None,
    /// A bearer token of the caller's choosing (forged).
    Bearer(&'a str),
    /// A device's certificate in the TLS handshake, no token.
    Certificate(&'a DeviceTls),
}

/// A client for the operator API.
pub struct Operator {
    client: HttpsClient,
    token: Zeroizing<String>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("server", &self.client.endpoint().authority())
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// A client for `url` trusting `trust`, authenticating with the admin `token`.
    pub fn new(url: &str, trust: &TrustAnchor, token: Zeroizing<String>) -> Result<Self, SimError> {
        let endpoint = Endpoint::parse(url, Some(8443))?;
        Ok(Self {
            client: HttpsClient::new(endpoint, trust.anonymous_client()?)?,
            token,
        })
    }

    async fn call(
        &self,
        what: &'static str,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<Value, SimError> {
        let auth = Zeroizing::new(format!("Bearer {}", self.token.as_str()));
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).map_err(|e| SimError::Config(e.to_string()))?
        };
        let resp = self
            .client
            .request(
                method,
                path,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                &body,
            )
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(SimError::Refused {
                what,
                status: resp.status,
                body: String::from_utf8_lossy(&resp.body)
                    .chars()
                    .take(300)
                    .collect(),
            });
        }
        Ok(serde_json::from_slice(&resp.body).unwrap_or(Value::Null))
    }

    /// One request exactly as given, with `creds`, whatever the answer: for the API attacks,
    /// which judge the status themselves. A busy answer (429) is retried after a pause, as a
    /// patient attacker would, so the answer judged is the one the request itself earned.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        creds: Credentials<'_>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Response, SimError> {
        let bearer = match creds {
            Credentials::Admin => Some(Zeroizing::new(format!("Bearer {}", self.token.as_str()))),
            Credentials::Bearer(t) => Some(Zeroizing::new(format!("Bearer {t}"))),
            Credentials::None | Credentials::Certificate(_) => None,
        };
        let mut headers = vec![("content-type", content_type)];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        let mut tries = 0;
        loop {
            let resp = match creds {
                Credentials::Certificate(tls) => {
                    HttpsClient::new(self.client.endpoint().clone(), tls.config())?
                        .request(method, path, &headers, body)
                        .await?
                }
                _ => self.client.request(method, path, &headers, body).await?,
            };
            tries += 1;
            if resp.status != 429 || tries >= 50 {
                return Ok(resp);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// How many audit entries of `kind` the whole log holds (pages through it).
    pub async fn audit_count(&self, kind: &str) -> Result<usize, SimError> {
        let (mut after, mut n) = (None::<u64>, 0);
        // Each answer scans at most 20,000 leaves; 500 pages cover ten million entries.
        for _ in 0..500 {
            let path = match after {
                Some(a) => format!("/api/v1/audit/events?type={kind}&limit=1000&after={a}"),
                None => format!("/api/v1/audit/events?type={kind}&limit=1000"),
            };
            let answer = self.call("audit count", "GET", &path, &Value::Null).await?;
            n += answer["entries"].as_array().map_or(0, Vec::len);
            let next = answer["next_after"].as_u64();
            if next.is_none() || next == after {
                break;
            }
            after = next;
        }
        Ok(n)
    }

    /// Registers `ids` as members of `group` (bulk import); returns how many were added.
    pub async fn register(&self, ids: &[String], group: &str) -> Result<usize, SimError> {
        let mut added = 0;
        for chunk in ids.chunks(IMPORT_CHUNK) {
            let devices: Vec<Value> = chunk
                .iter()
                .map(|id| json!({"id": id, "groups": [group]}))
                .collect();
            let answer = self
                .call(
                    "device import",
                    "POST",
                    "/api/v1/devices/import",
                    &Value::Array(devices),
                )
                .await?;
            added += answer["added"].as_u64().unwrap_or(0) as usize;
            if let Some(errors) = answer["errors"].as_array().filter(|e| !e.is_empty()) {
                return Err(SimError::Refused {
                    what: "device import",
                    status: 200,
                    body: errors
                        .iter()
                        .take(3)
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
        }
        Ok(added)
    }

    /// Mints a claim token for members of `group`, usable `quota` times within `ttl_seconds`.
    pub async fn group_claim(
        &self,
        group: &str,
        quota: u32,
        ttl_seconds: u64,
    ) -> Result<Zeroizing<String>, SimError> {
        let answer = self
            .call(
                "group claim",
                "POST",
                &format!("/api/v1/groups/{group}/claim"),
                &json!({"quota": quota, "ttl_seconds": ttl_seconds}),
            )
            .await?;
        answer["token"]
            .as_str()
            .map(|t| Zeroizing::new(t.to_owned()))
            .ok_or_else(|| SimError::Config("the claim answer has no token".into()))
    }

    /// Mints a one-time claim token for one device.
    pub async fn device_claim(&self, id: &str) -> Result<Zeroizing<String>, SimError> {
        let answer = self
            .call(
                "device claim",
                "POST",
                &format!("/api/v1/devices/{id}/claim"),
                &json!({}),
            )
            .await?;
        answer["token"]
            .as_str()
            .map(|t| Zeroizing::new(t.to_owned()))
            .ok_or_else(|| SimError::Config("the claim answer has no token".into()))
    }

    /// Audit entries about `device` of `kind` (`GET /api/v1/audit/events`).
    pub async fn audit_events(
        &self,
        device: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<Value>, SimError> {
        let mut query = Vec::new();
        if let Some(d) = device {
            query.push(format!("device={d}"));
        }
        if let Some(k) = kind {
            query.push(format!("type={k}"));
        }
        let path = format!("/api/v1/audit/events?{}", query.join("&"));
        let answer = self
            .call("audit events", "GET", &path, &Value::Null)
            .await?;
        Ok(answer["entries"].as_array().cloned().unwrap_or_default())
    }

    /// The device's latest boot report as the server stored it (`report` field of
    /// `GET /api/v1/devices/{id}/boot-report`).
    pub async fn boot_report(&self, id: &str) -> Result<Value, SimError> {
        let answer = self
            .call(
                "boot report",
                "GET",
                &format!("/api/v1/devices/{id}/boot-report"),
                &Value::Null,
            )
            .await?;
        Ok(answer["report"].clone())
    }

    /// Revokes a device and all its certificates.
    pub async fn revoke(&self, id: &str) -> Result<(), SimError> {
        self.call(
            "revoke",
            "POST",
            &format!("/api/v1/devices/{id}/revoke"),
            &json!({}),
        )
        .await
        .map(|_| ())
    }
}
