//! Register one device, list and show devices.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ironroot_fleet::Origin;
use ironroot_store::{Device, DeviceFilter, DeviceState, NewDevice};
use serde::{Deserialize, Serialize};

use super::{fleet, fleet_error, json_body, operator};
use crate::app::Shared;
use crate::auth::Conn;
use crate::error::{ApiError, OperatorError};

/// A device as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceView {
    /// Id.
    pub id: String,
    /// Lifecycle state.
    pub state: String,
    /// Owner.
    pub owner: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Registration time (Unix seconds).
    pub created_at: i64,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        Self {
            id: d.id,
            state: d.state.as_str().to_owned(),
            owner: d.owner,
            groups: d.groups,
            attributes: d.attributes,
            created_at: d.created_at,
        }
    }
}

/// Body of `POST /api/v1/devices` and one entry of a JSON import.
#[derive(Debug, Deserialize)]
pub struct AddDevice {
    /// Device id.
    pub id: String,
    /// Groups to join.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Owner.
    #[serde(default)]
    pub owner: Option<String>,
}

/// The hint for a bad `POST /api/v1/devices` body.
pub(crate) const ADD_EXAMPLE: &str = r#"send a JSON object such as {"id":"sensor-1","groups":["line-b"],"attributes":{"site":"lyon"},"owner":"ops"}"#;

/// Registers one device through the fleet service (audited write-ahead as `device.added`, the
/// same entry `ironroot device add` writes on a data directory).
pub(crate) async fn add_one(
    state: &Shared,
    actor: &str,
    conn: &Conn,
    req: AddDevice,
) -> Result<Device, OperatorError> {
    let new = NewDevice {
        id: req.id,
        state: DeviceState::Manufactured,
        owner: req.owner,
        groups: req.groups,
        attributes: req.attributes,
    };
    let origin = Origin::new(actor, conn.peer.to_string());
    fleet(state)
        .add_device(&origin, &new)
        .await
        .map_err(|e| fleet_error(&e))
}

pub(crate) async fn add(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OperatorError> {
    let actor = operator(&state, &conn, &headers, "devices.add").await?;
    let req: AddDevice = json_body(&state, &headers, body, ADD_EXAMPLE).await?;
    let device = add_one(&state, &actor, &conn, req).await?;
    Ok((StatusCode::CREATED, Json(DeviceView::from(device))).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    group: Option<String>,
    state: Option<String>,
    owner: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn list(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<DeviceView>>, OperatorError> {
    operator(&state, &conn, &headers, "devices.list").await?;
    let filter = DeviceFilter {
        group: q.group,
        state: match q.state {
            Some(s) => Some(DeviceState::from_name(&s).ok_or_else(|| {
                OperatorError::field(
                    ApiError::BadRequest,
                    "state",
                    format!("unknown state {:?}", s.escape_default().to_string()),
                    "use one of manufactured, provisioned, active, quarantined, in_repair, revoked, decommissioned",
                )
            })?),
            None => None,
        },
        owner: q.owner,
        after: q.after,
        limit: q.limit,
    };
    let devices = state
        .store
        .list_devices(&filter)
        .await
        .map_err(|e| OperatorError::store(&e))?;
    Ok(Json(devices.into_iter().map(DeviceView::from).collect()))
}

/// A certificate in `show`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CertificateView {
    /// Serial (hex).
    pub serial: String,
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Validity end.
    pub not_after: i64,
}

/// `GET /api/v1/devices/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceDetail {
    /// The device.
    #[serde(flatten)]
    pub device: DeviceView,
    /// Its certificates.
    pub certificates: Vec<CertificateView>,
}

pub(crate) async fn show(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<DeviceDetail>, OperatorError> {
    operator(&state, &conn, &headers, "devices.show").await?;
    let device = state
        .store
        .device(&id)
        .await
        .map_err(|e| OperatorError::store(&e))?;
    let certs = state
        .store
        .certificates_for_device(&id)
        .await
        .map_err(|e| OperatorError::store(&e))?;
    Ok(Json(DeviceDetail {
        device: device.into(),
        certificates: certs
            .into_iter()
            .map(|c| CertificateView {
                serial: c.serial.to_string(),
                kind: c.kind.as_str().to_owned(),
                status: c.status.as_str().to_owned(),
                not_after: c.not_after,
            })
            .collect(),
    }))
}
