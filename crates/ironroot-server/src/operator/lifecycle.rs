//! Lifecycle changes: revoke, decommission, quarantine, release, repair.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use ironroot_audit::{Event, EventKind, Outcome};
use ironroot_store::{DeviceState, StoreError};
use serde::{Deserialize, Serialize};

use super::{device_id, fleet, fleet_error, identity_error, operator};
use crate::app::Shared;
use crate::auth::Conn;
use crate::error::{ApiError, OperatorError};
use crate::identity::IdentityError;

/// Result of revoke/decommission/repair.
#[derive(Debug, Serialize, Deserialize)]
pub struct RetireResult {
    /// The device.
    pub device: String,
    /// Serials revoked now.
    pub revoked: Vec<String>,
    /// Decommission only: whether the signed decommission command reached the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_sent: Option<bool>,
    /// Decommission only: whether the device ended its session after the command (it does so
    /// once its keys are destroyed). `false`: it was offline or did not answer, so its keys
    /// could not be destroyed remotely (it is revoked and retired all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_destroyed_confirmed: Option<bool>,
}

impl RetireResult {
    /// The answer for `device` whose certificates `revoked` were revoked now (no command).
    pub fn revoked_now(device: String, revoked: &[ironroot_store::Certificate]) -> Self {
        Self {
            device,
            revoked: revoked.iter().map(|c| c.serial.to_string()).collect(),
            command_sent: None,
            keys_destroyed_confirmed: None,
        }
    }
}

pub(crate) async fn revoke(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RetireResult>, OperatorError> {
    let actor = operator(&state, &conn, &headers, "devices.revoke").await?;
    let device = device_id(&id)?;
    let result = state.identity.revoke_device(&device, &actor).await;
    retire_answer(&state, actor, id, result).await
}

pub(crate) async fn decommission(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RetireResult>, OperatorError> {
    let actor = operator(&state, &conn, &headers, "devices.decommission").await?;
    let device = device_id(&id)?;
    let result = crate::commands::decommission(&state, &device, &actor).await;
    let (command_sent, confirmed) = match &result {
        Ok(d) => (Some(d.command_sent), Some(d.keys_destroyed_confirmed)),
        Err(_) => (None, None),
    };
    let mut answer = retire_answer(&state, actor, id, result.map(|d| d.revoked)).await?;
    answer.command_sent = command_sent;
    answer.keys_destroyed_confirmed = confirmed;
    Ok(answer)
}

/// Repair: the device is taken out of service (`in_repair`, certificates revoked, sessions
/// cut) until it is re-commissioned with a fresh key. The fleet service audits it.
pub(crate) async fn repair(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RetireResult>, OperatorError> {
    let actor = operator(&state, &conn, &headers, "devices.repair").await?;
    device_id(&id)?;
    let origin = ironroot_fleet::Origin::new(actor, conn.peer.to_string());
    let revoked = fleet(&state)
        .send_for_repair(&origin, &id)
        .await
        .map_err(|e| fleet_error(&e))?;
    Ok(Json(RetireResult::revoked_now(id, &revoked)))
}

/// The answer to revoke/decommission; a refusal is audited with the identity service's reason.
async fn retire_answer(
    state: &Shared,
    actor: String,
    id: String,
    result: Result<Vec<ironroot_store::Certificate>, IdentityError>,
) -> Result<Json<RetireResult>, OperatorError> {
    match result {
        Ok(certs) => Ok(Json(RetireResult::revoked_now(id, &certs))),
        Err(e) => {
            let _ = state
                .audit
                .record(
                    Event::new(EventKind::DeviceStateChanged, actor)
                        .subject("device", id)
                        .outcome(Outcome::Denied)
                        .detail("reason", e.kind()),
                )
                .await;
            Err(identity_error(&e))
        }
    }
}

/// Result of quarantine/release.
#[derive(Debug, Serialize, Deserialize)]
pub struct StateResult {
    /// The device.
    pub device: String,
    /// Its lifecycle state now.
    pub state: String,
}

/// Quarantine: the device stays connected-capable but the broker gives it the quarantine
/// policy (its own status topic only), within a second, through the change feed.
pub(crate) async fn quarantine(
    state: State<Shared>,
    conn: Extension<Conn>,
    headers: HeaderMap,
    id: Path<String>,
) -> Result<Json<StateResult>, OperatorError> {
    change_state(
        state,
        conn,
        headers,
        id,
        DeviceState::Quarantined,
        "devices.quarantine",
    )
    .await
}

/// Release from quarantine: back to active, its attached policies apply again.
pub(crate) async fn release(
    state: State<Shared>,
    conn: Extension<Conn>,
    headers: HeaderMap,
    id: Path<String>,
) -> Result<Json<StateResult>, OperatorError> {
    change_state(
        state,
        conn,
        headers,
        id,
        DeviceState::Active,
        "devices.release",
    )
    .await
}

async fn change_state(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    to: DeviceState,
    what: &str,
) -> Result<Json<StateResult>, OperatorError> {
    let actor = operator(&state, &conn, &headers, what).await?;
    device_id(&id)?;
    let result = state.store.set_device_state(&id, to).await;
    let (outcome, reason) = match &result {
        Ok(_) => (Outcome::Success, None),
        Err(StoreError::UnknownDevice(_)) => (Outcome::Denied, Some("unknown_device")),
        Err(StoreError::InvalidTransition { .. }) => (Outcome::Denied, Some("invalid_transition")),
        Err(_) => (Outcome::Failure, Some("store_error")),
    };
    let mut event = Event::new(EventKind::DeviceStateChanged, actor)
        .subject("device", id.clone())
        .outcome(outcome)
        .detail("to", to.as_str());
    if let Some(reason) = reason {
        event = event.detail("reason", reason);
    }
    state
        .audit
        .record(event)
        .await
        .map_err(|_| OperatorError::from(ApiError::Internal))?;
    let device = result.map_err(|e| OperatorError::store(&e))?;
    Ok(Json(StateResult {
        device: id,
        state: device.state.as_str().to_owned(),
    }))
}
