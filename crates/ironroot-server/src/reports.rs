//! Device reports over mutual TLS: `POST /api/v1/devices/{id}/boot-report` (the device, with
//! its operational certificate) and `GET /api/v1/devices/{id}/boot-report` (operators). The
//! checks, audit entries and storage live in the fleet service; this module only authenticates,
//! bounds and parses.

use std::time::Instant;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ironroot_audit::EventKind;
use ironroot_device::BootReport;
use ironroot_device::firmware::MAX_BOOT_REPORT;
use ironroot_fleet::{FleetError, Origin};
use ironroot_pki::PeerKind;
use serde_json::{Value, json};

use crate::app::{Shared, audit_refusal, check_length, media_type, read_body};
use crate::auth::Conn;
use crate::error::{ApiError, OperatorError};
use crate::operator::{fleet, operator};

/// `POST /api/v1/devices/{id}/boot-report`: the device tells what secure boot decided.
pub(crate) async fn post_boot_report(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let kind = EventKind::DeviceBootReported;
    let Some(device) = conn
        .identity_of(PeerKind::Device)
        .map(|d| d.id().to_string())
    else {
        audit_refusal(
            &state,
            kind,
            "unknown",
            &conn,
            None,
            "no_device_certificate",
        )
        .await;
        return ApiError::Unauthorized.into_response();
    };
    let actor = format!("device:{device}");
    if device != id {
        // A device reports only for itself.
        audit_refusal(&state, kind, &actor, &conn, Some(&device), "wrong_device").await;
        return ApiError::Forbidden.into_response();
    }
    if !state.per_device.allow(&device, Instant::now()) {
        audit_refusal(&state, kind, &actor, &conn, Some(&device), "rate_limited").await;
        return ApiError::TooManyRequests.into_response();
    }
    let parsed = async {
        check_length(&headers, MAX_BOOT_REPORT)?;
        if media_type(&headers) != "application/json" {
            return Err(ApiError::UnsupportedMediaType);
        }
        let raw = read_body(&state, body, MAX_BOOT_REPORT).await?;
        let text = String::from_utf8(raw.to_vec()).map_err(|_| ApiError::BadRequest)?;
        let report: BootReport = serde_json::from_str(&text).map_err(|_| ApiError::BadRequest)?;
        Ok((report, text))
    }
    .await;
    let (report, text) = match parsed {
        Ok(p) => p,
        Err(e) => {
            audit_refusal(
                &state,
                kind,
                &actor,
                &conn,
                Some(&device),
                "malformed_report",
            )
            .await;
            return e.into_response();
        }
    };
    let origin = Origin::new(actor, conn.peer.to_string());
    match fleet(&state)
        .record_boot_report(&origin, &device, &report, &text)
        .await
    {
        Ok(record) => Json(json!({
            "device": record.device_id,
            "firmware_version": record.firmware_version,
            "recorded_at": record.reported_at,
        }))
        .into_response(),
        Err(FleetError::InvalidReport(_)) => ApiError::BadRequest.into_response(),
        Err(FleetError::Refused(_)) => ApiError::Unauthorized.into_response(),
        Err(_) => ApiError::Internal.into_response(),
    }
}

/// `GET /api/v1/devices/{id}/boot-report`: the device's latest boot report, as it sent it,
/// with the time the server received it (`report: null` before the first one).
pub(crate) async fn get_boot_report(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, OperatorError> {
    operator(&state, &conn, &headers, "devices.boot_report").await?;
    // An unknown device is a 404 with the registry's own message.
    state
        .store
        .device(&id)
        .await
        .map_err(|e| OperatorError::store(&e))?;
    let record = fleet(&state)
        .boot_report(&id)
        .await
        .map_err(|e| OperatorError::store(&e))?;
    // A registered device that never reported: 200 with nulls (the device exists; a 404
    // would say it does not).
    let Some(record) = record else {
        return Ok(Json(
            json!({"device": id, "received_at": null, "report": null}),
        ));
    };
    let report: Value = serde_json::from_str(&record.report).unwrap_or(Value::Null);
    Ok(Json(json!({
        "device": record.device_id,
        "received_at": record.reported_at,
        "report": report,
    })))
}
