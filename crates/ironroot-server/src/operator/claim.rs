//! Mint one-time claim tokens for a device or a group.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use ironroot_audit::{Event, EventKind};
use serde::{Deserialize, Serialize};

use super::{json_body, operator};
use crate::app::Shared;
use crate::auth::Conn;
use crate::claims::{self, ClaimScope};
use crate::error::{ApiError, OperatorError};

/// The hint for a bad claim body.
const CLAIM_EXAMPLE: &str = r#"send an empty body or a JSON object such as {"ttl_seconds":900} ({"ttl_seconds":900,"quota":50} for a group)"#;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ClaimRequest {
    /// Lifetime in seconds (default 15 minutes).
    ttl_seconds: Option<u64>,
    /// Group tokens: how many enrollments (default 1).
    quota: Option<u32>,
}

/// A minted claim token (shown once).
#[derive(Debug, Serialize, Deserialize)]
pub struct ClaimResponse {
    /// The token: give it to the device, it is not stored.
    pub token: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

async fn mint(
    state: &Shared,
    conn: &Conn,
    actor: &str,
    scope: ClaimScope,
    req: ClaimRequest,
) -> Result<Json<ClaimResponse>, OperatorError> {
    let rules = &state.config.enrollment;
    let ttl = req.ttl_seconds.unwrap_or(rules.default_claim_ttl.as_secs());
    if ttl == 0 || ttl > rules.max_claim_ttl.as_secs() {
        return Err(OperatorError::field(
            ApiError::BadRequest,
            "ttl_seconds",
            format!(
                "ttl_seconds must be between 1 and {} (the server's maximum claim lifetime)",
                rules.max_claim_ttl.as_secs()
            ),
            "omit ttl_seconds for the default lifetime, or ask for a shorter one",
        ));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let minted = claims::mint(&state.store, &scope, actor, now, now + ttl as i64)
        .await
        .map_err(|e| OperatorError::store(&e))?;
    let (kind, subject) = match &scope {
        ClaimScope::Device(d) => ("device", d.clone()),
        ClaimScope::Group { name, .. } => ("group", name.clone()),
    };
    let mut e = Event::new(EventKind::ProvisionClaimCreated, actor)
        .subject(kind, subject)
        .source(conn.peer.to_string())
        .detail("expires_at", minted.expires_at.to_string());
    if let ClaimScope::Group { quota, .. } = &scope {
        e = e.detail("quota", quota.to_string());
    }
    let _ = state.audit.record(e).await;
    Ok(Json(ClaimResponse {
        token: minted.token.to_string(),
        expires_at: minted.expires_at,
    }))
}

pub(crate) async fn claim_device(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<ClaimResponse>, OperatorError> {
    let actor = operator(&state, &conn, &headers, "devices.claim").await?;
    let req: ClaimRequest = json_body(&state, &headers, body, CLAIM_EXAMPLE).await?;
    let device = state
        .store
        .device(&id)
        .await
        .map_err(|e| OperatorError::store(&e))?;
    if !device.state.may_receive_certificates() {
        return Err(OperatorError::field(
            ApiError::Conflict,
            "state",
            format!(
                "the device is {}: it may not receive certificates",
                device.state
            ),
            "only manufactured, provisioned, active or quarantined devices can be claimed",
        ));
    }
    mint(&state, &conn, &actor, ClaimScope::Device(id), req).await
}

pub(crate) async fn claim_group(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<ClaimResponse>, OperatorError> {
    let actor = operator(&state, &conn, &headers, "groups.claim").await?;
    let req: ClaimRequest = json_body(&state, &headers, body, CLAIM_EXAMPLE).await?;
    let quota = req.quota.unwrap_or(1).max(1);
    ironroot_store::validate::group_name(&name).map_err(|e| OperatorError {
        field: Some("name"),
        ..OperatorError::store(&e)
    })?;
    mint(
        &state,
        &conn,
        &actor,
        ClaimScope::Group { name, quota },
        req,
    )
    .await
}
