//! `POST /ocsp` and `GET /ocsp/{request}` (RFC 6960 Appendix A): public, like the CRL, and
//! thin: the identity service parses, looks up and signs (`IdentityService::answer_ocsp`).
//! The per-source rate limit and the body size and time limits apply as to every route.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use ironroot_pki::ocsp::{MAX_REQUEST_BYTES, OcspRequest, REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE};

use crate::app::{Shared, check_length, media_type, read_body};
use crate::error::ApiError;

/// `POST /ocsp`: a DER `OCSPRequest` body.
pub(crate) async fn post(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let max = state.config.limits.max_body.min(MAX_REQUEST_BYTES);
    check_length(&headers, max)?;
    if media_type(&headers) != REQUEST_MEDIA_TYPE {
        return Err(ApiError::UnsupportedMediaType);
    }
    let raw = read_body(&state, body, max).await?;
    let answer = state
        .identity
        .answer_ocsp(OcspRequest::from_der(&raw))
        .await;
    Ok(respond(answer))
}

/// `GET /ocsp/{request}`: the base64 request as one (percent-encoded) path segment.
pub(crate) async fn get(State(state): State<Shared>, Path(request): Path<String>) -> Response {
    let answer = state
        .identity
        .answer_ocsp(OcspRequest::from_get_path(&request))
        .await;
    respond(answer)
}

/// Every OCSP answer is HTTP 200; the OCSP status is inside the body (RFC 6960 §4.2.1).
fn respond(der: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, RESPONSE_MEDIA_TYPE),
            // Answers come from the live set; a cache must not replay one past its nextUpdate,
            // and shared caches gain little from minutes-long answers.
            (header::CACHE_CONTROL, "no-store"),
        ],
        der,
    )
        .into_response()
}
