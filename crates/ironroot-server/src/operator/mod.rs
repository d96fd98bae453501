//! The operator API under `/api/v1/`: register devices (one, or a CSV/JSON import), list and
//! show them, mint claim tokens, revoke and decommission. Every route requires the admin token
//! (`Authorization: Bearer …`, from `<data-dir>/admin.token`) or an operator client certificate;
//! every change is audited with the operator as actor.
//!
//! Module map: `devices` (add, list, show), `import` (CSV/JSON import), `claim` (claim
//! tokens), `lifecycle` (revoke, decommission, quarantine, release); this module holds the
//! routes and what every handler shares (operator authentication, body parsing, error mapping).

use axum::Router;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use ironroot_audit::EventKind;
use ironroot_store::StoreError;

use crate::app::{Shared, audit_refusal, check_length, read_body};
use crate::auth::{Conn, operator_actor};
use crate::error::ApiError;
use crate::identity::IdentityError;

mod claim;
mod devices;
mod import;
mod lifecycle;

pub use claim::ClaimResponse;
pub use devices::{AddDevice, CertificateView, DeviceDetail, DeviceView};
pub use import::ImportResult;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use import::parse_csv;
pub use lifecycle::{RetireResult, StateResult};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/devices", get(devices::list).post(devices::add))
        .route("/api/v1/devices/import", post(import::import))
        .route("/api/v1/devices/{id}", get(devices::show))
        .route("/api/v1/devices/{id}/claim", post(claim::claim_device))
        .route("/api/v1/devices/{id}/revoke", post(lifecycle::revoke))
        .route(
            "/api/v1/devices/{id}/decommission",
            post(lifecycle::decommission),
        )
        .route(
            "/api/v1/devices/{id}/quarantine",
            post(lifecycle::quarantine),
        )
        .route("/api/v1/devices/{id}/release", post(lifecycle::release))
        .route("/api/v1/groups/{name}/claim", post(claim::claim_group))
}

/// The operator behind a request (admin token or operator certificate); a refusal is audited.
pub(crate) async fn operator(
    state: &Shared,
    conn: &Conn,
    headers: &HeaderMap,
    what: &str,
) -> Result<String, ApiError> {
    match operator_actor(conn, headers, &state.admin) {
        Some(actor) => Ok(actor),
        None => {
            audit_refusal(state, EventKind::AuthFailed, "unknown", conn, None, what).await;
            Err(ApiError::Unauthorized)
        }
    }
}

/// Parses a JSON body (an empty body reads as `{}`).
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    state: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    check_length(headers, state.config.limits.max_body)?;
    let raw = read_body(state, body, state.config.limits.max_body).await?;
    if raw.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|_| ApiError::BadRequest);
    }
    serde_json::from_slice(&raw).map_err(|_| ApiError::BadRequest)
}

pub(crate) fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::UnknownDevice(_) => ApiError::NotFound,
        StoreError::DuplicateDevice(_) => ApiError::Conflict,
        StoreError::InvalidInput { .. } => ApiError::BadRequest,
        StoreError::InvalidTransition { .. } => ApiError::Conflict,
        _ => ApiError::Internal,
    }
}

pub(crate) fn identity_error(e: &IdentityError) -> ApiError {
    match e {
        IdentityError::UnknownDevice(_) => ApiError::NotFound,
        IdentityError::WrongState { .. } => ApiError::Conflict,
        _ => ApiError::Internal,
    }
}
