//! The few operator calls the simulator makes through the server's API (bearer token).

use ironroot_device::TrustAnchor;
use ironroot_https_client::{Endpoint, HttpsClient};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::SimError;

/// Devices registered per import request (well under the API's 64 KiB body limit).
const IMPORT_CHUNK: usize = 500;

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
