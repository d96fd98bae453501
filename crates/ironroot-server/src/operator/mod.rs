//! The operator API under `/api/v1/`: register devices (one, or a CSV/JSON import), list and
//! show them, mint claim tokens, revoke and decommission. Every route requires the admin token
//! (`Authorization: Bearer …`, from `<data-dir>/admin.token`) or an operator client certificate;
//! every change is audited with the operator as actor.
//!
//! Module map: `devices` (add, list, show), `import` (CSV/JSON import), `claim` (claim
//! tokens), `lifecycle` (revoke, decommission, quarantine, release, repair), `rebind` (ownership transfer, re-commission), `incident` (contain devices as one incident, its report); this module re-exports the
//! handlers for the route table (`crate::routes`) and holds what every handler shares (operator authentication, body parsing, error mapping).

use axum::body::Body;
use axum::http::HeaderMap;
use ironroot_audit::EventKind;
use ironroot_fleet::{Fleet, FleetError};
use ironroot_pki::DeviceId;
use ironroot_store::StoreError;

use crate::app::{Shared, audit_refusal, check_length, read_body};
use crate::auth::{Conn, operator_actor};
use crate::error::{ApiError, OperatorError};
use crate::identity::IdentityError;

mod audit;
mod claim;
mod devices;
mod import;
mod incident;
mod lifecycle;
mod rebind;

pub use claim::ClaimResponse;
pub use devices::{AddDevice, CertificateView, DeviceDetail, DeviceView};
pub use import::ImportResult;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use import::parse_csv;
pub use lifecycle::{RetireResult, StateResult};
pub use rebind::RebindResult;

// The handlers, for the route table in `crate::routes` (which builds the router and the
// OpenAPI document from one list).
pub(crate) use audit::events as audit_events;
pub(crate) use claim::{claim_device, claim_group};
pub(crate) use devices::{add, list, show};
pub(crate) use import::import;
pub(crate) use incident::{contain as incident_contain, report as incident_report};
pub(crate) use lifecycle::{decommission, quarantine, release, repair, revoke};
pub(crate) use rebind::{recommission, transfer};

/// The operator behind a request (admin token or operator certificate); a refusal is audited.
pub(crate) async fn operator(
    state: &Shared,
    conn: &Conn,
    headers: &HeaderMap,
    what: &str,
) -> Result<String, OperatorError> {
    match operator_actor(conn, headers, &state.admin) {
        Some(actor) => Ok(actor),
        None => {
            audit_refusal(state, EventKind::AuthFailed, "unknown", conn, None, what).await;
            // Unauthenticated callers get the uniform 401 (no hint): they are not known to be
            // operators.
            Err(ApiError::Unauthorized.into())
        }
    }
}

/// The fleet service on the server's registry and audit log (two handle clones).
pub(crate) fn fleet(state: &Shared) -> Fleet {
    Fleet::new(state.store.clone(), state.audit.clone())
}

/// Parses a JSON body (an empty body reads as `{}`); `example` is the hint on a bad body.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    state: &Shared,
    headers: &HeaderMap,
    body: Body,
    example: &'static str,
) -> Result<T, OperatorError> {
    check_length(headers, state.config.limits.max_body)?;
    let raw = read_body(state, body, state.config.limits.max_body).await?;
    let raw: &[u8] = if raw.is_empty() { b"{}" } else { &raw };
    serde_json::from_slice(raw).map_err(|e| OperatorError::json(&e, example))
}

/// A device id from the request path, checked.
pub(crate) fn device_id(id: &str) -> Result<DeviceId, OperatorError> {
    DeviceId::parse(id).map_err(|_| {
        OperatorError::field(
            ApiError::BadRequest,
            "id",
            "invalid device id",
            "use 1-128 characters of a-z A-Z 0-9 . _ : -",
        )
    })
}

/// A fleet-service error, for an operator.
pub(crate) fn fleet_error(e: &FleetError) -> OperatorError {
    match e.store_error() {
        Some(s) if matches!(e, FleetError::Refused(_)) => OperatorError::store(s),
        _ => ApiError::Internal.into(),
    }
}

/// An identity-service error, for an operator.
pub(crate) fn identity_error(e: &IdentityError) -> OperatorError {
    match e {
        IdentityError::UnknownDevice(_) => {
            OperatorError::store(&StoreError::UnknownDevice(String::new()))
        }
        IdentityError::WrongState { state, op, .. } => OperatorError::field(
            ApiError::Conflict,
            "state",
            format!("the device is {state}: cannot {op} it"),
            "GET /api/v1/devices/{id} shows its state",
        ),
        _ => ApiError::Internal.into(),
    }
}
