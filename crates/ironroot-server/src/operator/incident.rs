//! Incident response over the operator API: contain devices as one incident, read its report.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ironroot_fleet::Origin;
use ironroot_fleet::incident::{
    ContainAction, ContainRequest, DeviceQuery, IncidentError, IncidentReport, Targets,
};
use serde::Deserialize;

use super::{fleet, json_body, operator};
use crate::app::Shared;
use crate::auth::Conn;
use crate::error::{ApiError, OperatorError};

/// Most evidence references one incident keeps, and their length.
const MAX_EVIDENCE: usize = 32;
const MAX_TEXT: usize = 1024;

/// `POST /api/v1/incidents`: exactly one of `devices`, `group`, `query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContainBody {
    #[serde(default)]
    devices: Option<Vec<String>>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    query: Option<String>,
    /// `quarantine` (default) or `revoke`.
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    evidence: Vec<String>,
}

const CONTAIN_EXAMPLE: &str = r#"send a JSON object such as {"group":"line-7","action":"quarantine","reason":"beaconing","evidence":["alarm-42"]} (exactly one of devices, group, query)"#;

fn bad(field: &'static str, message: impl Into<String>, hint: &'static str) -> OperatorError {
    OperatorError::field(ApiError::BadRequest, field, message, hint)
}

impl ContainBody {
    fn request(self) -> Result<ContainRequest, OperatorError> {
        let action = match self.action.as_deref() {
            None | Some("quarantine") => ContainAction::Quarantine,
            Some("revoke") => ContainAction::Revoke,
            Some(_) => {
                return Err(bad("action", "unknown action", "use quarantine or revoke"));
            }
        };
        let mut query_text = String::new();
        let targets = match (self.devices, self.group, self.query) {
            (Some(d), None, None) => Targets::Devices(d),
            (None, Some(g), None) => Targets::Group(g),
            (None, None, Some(q)) => {
                let parsed = DeviceQuery::parse(&q).map_err(|e| {
                    bad(
                        "query",
                        e.to_string(),
                        "space-separated key=value terms: group, state, owner, id, attr.<name>",
                    )
                })?;
                query_text = q;
                Targets::Query(parsed)
            }
            _ => {
                return Err(bad(
                    "body",
                    "name exactly one of devices, group, query",
                    CONTAIN_EXAMPLE,
                ));
            }
        };
        if self.reason.len() > MAX_TEXT
            || self.evidence.len() > MAX_EVIDENCE
            || self.evidence.iter().any(|e| e.len() > MAX_TEXT)
            || query_text.len() > MAX_TEXT
        {
            return Err(bad(
                "evidence",
                "reason, query and evidence are limited",
                "at most 32 evidence references; each text at most 1024 bytes",
            ));
        }
        let mut request = ContainRequest::new(targets, action);
        request.query_text = query_text;
        request.reason = self.reason;
        request.evidence = self.evidence;
        Ok(request)
    }
}

fn incident_error(e: &IncidentError) -> OperatorError {
    match e {
        IncidentError::NoTargets(_) => OperatorError::field(
            ApiError::NotFound,
            "body",
            e.to_string(),
            "list devices with GET /api/v1/devices?group=…",
        ),
        IncidentError::TooManyTargets(_) | IncidentError::BadQuery(_) => {
            bad("query", e.to_string(), "narrow the selection")
        }
        IncidentError::BadIncidentId(_) => bad(
            "id",
            e.to_string(),
            "incident ids look like inc-0123456789abcdef",
        ),
        IncidentError::UnknownIncident(_) => OperatorError::field(
            ApiError::NotFound,
            "id",
            e.to_string(),
            "the id is printed by POST /api/v1/incidents",
        ),
        _ => ApiError::Internal.into(),
    }
}

pub(crate) async fn contain(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OperatorError> {
    let actor = operator(&state, &conn, &headers, "incidents.contain").await?;
    let body: ContainBody = json_body(&state, &headers, body, CONTAIN_EXAMPLE).await?;
    let request = body.request()?;
    let origin = Origin::new(actor, conn.peer.to_string());
    let done = fleet(&state)
        .contain(&origin, &request)
        .await
        .map_err(|e| incident_error(&e))?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

pub(crate) async fn report(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<IncidentReport>, OperatorError> {
    operator(&state, &conn, &headers, "incidents.report").await?;
    fleet(&state)
        .incident_report(&id)
        .await
        .map(Json)
        .map_err(|e| incident_error(&e))
}
