//! `GET /metrics`: the node's metrics in the Prometheus text exposition format (0.0.4), for
//! operators only (admin token or operator certificate, like every admin route). The server
//! renders what its [`MetricsSource`] writes — a node attaches its MQTT broker — after a line of
//! its own; a failed authentication is audited like any other operator call.

use std::fmt;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::app::Shared;
use crate::auth::Conn;
use crate::error::OperatorError;
use crate::operator::operator;

/// Something with metrics to expose on `/metrics` (the node's broker).
pub trait MetricsSource: Send + Sync + fmt::Debug {
    /// Appends metric families in the Prometheus text exposition format to `out`.
    fn render(&self, out: &mut String);
}

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn metrics(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
) -> Result<Response, OperatorError> {
    operator(&state, &conn, &headers, "metrics.read").await?;
    let mut out = String::from(
        "# HELP ironroot_up Whether this ironroot node answers.\n# TYPE ironroot_up gauge\nironroot_up 1\n",
    );
    let source: Option<Arc<dyn MetricsSource>> = state.metrics.get().cloned();
    if let Some(source) = source {
        source.render(&mut out);
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response())
}
