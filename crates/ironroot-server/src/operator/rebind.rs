//! Ownership transfer and re-commissioning over the operator API (the fleet service does the
//! work; see `ironroot_fleet::Fleet::rebind_device`).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use ironroot_fleet::Origin;
use ironroot_store::{Rebind, RebindKind, Rebound};
use serde::{Deserialize, Serialize};

use super::{device_id, fleet, fleet_error, json_body, operator};
use crate::app::Shared;
use crate::auth::Conn;
use crate::error::{ApiError, OperatorError};

/// The body of transfer and re-commission: the binding the device gets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RebindBody {
    /// The new owner (required for a transfer).
    #[serde(default)]
    owner: Option<String>,
    /// Groups the new owner puts the device in.
    #[serde(default)]
    groups: Vec<String>,
    /// Attributes the new owner sets.
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

const TRANSFER_EXAMPLE: &str = r#"send a JSON object such as {"owner":"acme-water","groups":["acme-pumps"],"attributes":{"site":"lyon"}}"#;

/// What a transfer or re-commission did.
#[derive(Debug, Serialize, Deserialize)]
pub struct RebindResult {
    /// The device.
    pub device: String,
    /// Its lifecycle state now (`manufactured`: it must enroll a fresh key).
    pub state: String,
    /// Its state before.
    pub from_state: String,
    /// The owner before.
    pub previous_owner: Option<String>,
    /// The owner now.
    pub owner: Option<String>,
    /// Serials revoked now.
    pub revoked: Vec<String>,
    /// Groups it left.
    pub groups_removed: Vec<String>,
    /// Attribute keys removed.
    pub attributes_removed: Vec<String>,
    /// Policies that were attached to the device itself, now detached.
    pub policies_detached: Vec<String>,
    /// Unused claim tokens for the device, now void.
    pub claims_voided: u64,
}

impl RebindResult {
    /// The answer for `device`, now owned by `owner`, from what the fleet service did.
    pub fn from_rebound(device: String, owner: Option<String>, r: Rebound) -> Self {
        Self {
            device,
            state: ironroot_store::DeviceState::Manufactured
                .as_str()
                .to_owned(),
            from_state: r.from.as_str().to_owned(),
            previous_owner: r.previous_owner,
            owner,
            revoked: r.revoked.iter().map(|c| c.serial.to_string()).collect(),
            groups_removed: r.removed_groups,
            attributes_removed: r.removed_attributes,
            policies_detached: r.detached_policies,
            claims_voided: r.voided_claims,
        }
    }
}

/// `POST /api/v1/devices/{id}/transfer`.
pub(crate) async fn transfer(
    state: State<Shared>,
    conn: Extension<Conn>,
    headers: HeaderMap,
    id: Path<String>,
    body: Body,
) -> Result<Json<RebindResult>, OperatorError> {
    rebind(state, conn, headers, id, body, RebindKind::Transfer).await
}

/// `POST /api/v1/devices/{id}/recommission`.
pub(crate) async fn recommission(
    state: State<Shared>,
    conn: Extension<Conn>,
    headers: HeaderMap,
    id: Path<String>,
    body: Body,
) -> Result<Json<RebindResult>, OperatorError> {
    rebind(state, conn, headers, id, body, RebindKind::Recommission).await
}

async fn rebind(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
    kind: RebindKind,
) -> Result<Json<RebindResult>, OperatorError> {
    let what = match kind {
        RebindKind::Transfer => "devices.transfer",
        _ => "devices.recommission",
    };
    let actor = operator(&state, &conn, &headers, what).await?;
    device_id(&id)?;
    let body: RebindBody = json_body(&state, &headers, body, TRANSFER_EXAMPLE).await?;
    if kind == RebindKind::Transfer && body.owner.is_none() {
        return Err(OperatorError::field(
            ApiError::BadRequest,
            "owner",
            "a transfer names the new owner",
            TRANSFER_EXAMPLE,
        ));
    }
    let rebind = Rebind {
        kind,
        owner: body.owner,
        groups: body.groups,
        attributes: body.attributes,
    };
    let origin = Origin::new(actor, conn.peer.to_string());
    let done = fleet(&state)
        .rebind_device(&origin, &id, &rebind)
        .await
        .map_err(|e| fleet_error(&e))?;
    Ok(Json(RebindResult::from_rebound(id, rebind.owner, done)))
}
