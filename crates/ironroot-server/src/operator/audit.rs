//! `GET /api/v1/audit/events`: read the audit log through the API (the fleet simulator checks
//! that refusals were audited; a dashboard lists them), with the same filter and JSON form as
//! `ironroot audit show --json`.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use ironroot_audit::{Event, EventFilter, LogStorage, SqlStorage, TypeFilter, entry_json};
use serde::Deserialize;

use super::operator;
use crate::app::Shared;
use crate::auth::Conn;
use crate::error::{ApiError, OperatorError};

/// Most entries one answer carries.
const MAX_LIMIT: u64 = 1000;
/// Most leaves scanned for one answer (a selective filter over a long log pages with `next`).
const MAX_SCAN: u64 = 20_000;

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    device: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    after: Option<u64>,
    limit: Option<u64>,
}

pub(crate) async fn events(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, OperatorError> {
    operator(&state, &conn, &headers, "audit.events").await?;
    let event_type = match q.event_type.as_deref() {
        Some(t) => Some(TypeFilter::parse(t).map_err(|message| {
            OperatorError::field(
                ApiError::BadRequest,
                "type",
                message,
                "use an event name from docs/audit-events.md (mqtt.denied) or an area (mqtt)",
            )
        })?),
        None => None,
    };
    let filter = EventFilter {
        device: q.device,
        since: None,
        event_type,
    };
    let limit = q.limit.unwrap_or(200).clamp(1, MAX_LIMIT);
    let storage = SqlStorage::new(state.store.clone());
    let mut next = q.after.map_or(0, |a| a.saturating_add(1));
    let scan_end = next.saturating_add(MAX_SCAN);
    let mut entries = Vec::new();
    'pages: while next < scan_end {
        let page = storage
            .read_leaves(next, scan_end, 1000)
            .await
            .map_err(|_| OperatorError::from(ApiError::Internal))?;
        let Some(last) = page.last() else { break };
        let last_index = last.index;
        for leaf in page {
            next = leaf.index + 1;
            if let Ok(e) = Event::decode(&leaf.data)
                && filter.matches(&e)
            {
                entries.push(entry_json(leaf.index, &e, &leaf.data));
                if entries.len() as u64 >= limit {
                    break 'pages;
                }
            }
        }
        next = next.max(last_index + 1);
    }
    Ok(Json(serde_json::json!({
        "entries": entries,
        // Pass as `after` to continue; the last index looked at.
        "next_after": next.saturating_sub(1),
    })))
}
