//! The HTTP application: shared state, the router, and the request guards (rate limits, body
//! limits with a deadline, content types).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ironroot_audit::{Audit, Event, EventKind, Outcome};
use ironroot_store::Store;

use crate::auth::{AdminToken, Conn};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::identity::IdentityService;
use crate::limits::RateLimiter;
use crate::rotation::Rotations;

/// Everything a handler needs; one per server, shared by `Arc`.
pub(crate) struct AppState {
    pub identity: IdentityService,
    pub store: Store,
    pub audit: Arc<Audit>,
    pub config: ServerConfig,
    pub admin: AdminToken,
    pub per_source: RateLimiter<IpAddr>,
    pub per_device: RateLimiter<String>,
    /// Trusted intermediates and the root, DER (EST cacerts).
    pub ca_certs: Vec<Vec<u8>>,
    pub rotations: Rotations,
    /// Batches claim-token redemptions into shared durable commits.
    pub claims: ironroot_store::GroupCommitter,
    /// What `/metrics` renders beyond the server's own line (a node's broker), set once.
    pub metrics: std::sync::OnceLock<std::sync::Arc<dyn crate::MetricsSource>>,
    /// Where signed commands to devices go (a node's broker), set once.
    pub commands: std::sync::OnceLock<std::sync::Arc<dyn crate::CommandChannel>>,
}

pub(crate) type Shared = Arc<AppState>;

/// Builds the router from the route table ([`crate::routes::endpoints`]), the same table the
/// OpenAPI document is generated from.
pub(crate) fn router(state: Shared) -> Router {
    let mut router = Router::new();
    for endpoint in crate::routes::endpoints() {
        // Same path, several methods: axum merges them into one method router.
        router = router.route(endpoint.path, endpoint.handler);
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Per-source rate limit on every request, and the rotation hook: the first request made with
/// a rotated-to certificate retires the previous one.
async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let Some(conn) = req.extensions().get::<Conn>().cloned() else {
        return ApiError::Internal.into_response();
    };
    if !state.per_source.allow(&conn.peer.ip(), Instant::now()) {
        return ApiError::TooManyRequests.into_response();
    }
    if let Some(client) = &conn.client
        && client.identity.kind() == ironroot_pki::PeerKind::Device
    {
        state
            .rotations
            .note_used(&state, client.identity.serial())
            .await;
    }
    next.run(req).await
}

/// Reads the body within the request deadline and the size limit.
pub(crate) async fn read_body(state: &AppState, body: Body, max: usize) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(
        state.config.limits.request_timeout,
        axum::body::to_bytes(body, max),
    )
    .await
    {
        Err(_) => Err(ApiError::Timeout),
        Ok(Err(_)) => Err(ApiError::TooLarge),
        Ok(Ok(b)) => Ok(b),
    }
}

/// Refuses a request whose declared length is already over the limit, before reading it.
pub(crate) fn check_length(headers: &HeaderMap, max: usize) -> Result<(), ApiError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(ApiError::TooLarge);
    }
    Ok(())
}

/// The media type of a request, lowercased, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Records a refused request in the audit log (reason class only; never a token or CSR).
pub(crate) async fn audit_refusal(
    state: &AppState,
    event: EventKind,
    actor: &str,
    conn: &Conn,
    device: Option<&str>,
    reason: &str,
) {
    let mut e = Event::new(event, actor)
        .source(conn.peer.to_string())
        .outcome(Outcome::Denied)
        .detail("reason", reason);
    if let Some(d) = device {
        e = e.subject("device", d);
    }
    if let Err(err) = state.audit.record(e).await {
        log::error!("audit log write failed: {err}");
    }
}
