//! Enrollment: EST (RFC 7030) under `/.well-known/est/` and the JSON API beside it, over one
//! core that decides who the caller is and what it may get.
//!
//! | route | authentication | result |
//! |---|---|---|
//! | `GET cacerts` | none | PKCS#7 certs-only: trusted intermediates + root |
//! | `POST simpleenroll` | factory certificate (TLS, recorded in the registry, not revoked) or Basic `device-id:claim-token` | first operational certificate |
//! | `POST simplereenroll` | current operational certificate (TLS) | new certificate; the old one retires after the grace period or at first use of the new one |
//! | `POST simplereenroll` | factory certificate (TLS), operational certificate expired within the window, never revoked | new certificate (device was offline past expiry) |
//! | `GET csrattrs` | none | ecdsa-with-SHA256, P-256 |
//!
//! Every refusal answers with the same body (`401 {"error":"unauthorized"}` for anything about
//! identity), and is written to the audit log with the precise reason.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ironroot_audit::{Event, EventKind};
use ironroot_pki::{DeviceId, PeerKind, verify_csr};
use ironroot_store::{CertificateKind, CertificateStatus, DeviceState, StoreError};

use crate::app::{AppState, Shared, audit_refusal, check_length, media_type, read_body};
use crate::auth::{Basic, Conn, basic};
use crate::claims;
use crate::error::ApiError;
use crate::identity::{IdentityError, IssuePurpose, IssueRequest, Issued};

/// Which operation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Enroll,
    Reenroll,
}

/// A refusal: the reason for the audit log; the client sees `ApiError`.
struct Refused {
    reason: &'static str,
    error: ApiError,
    device: Option<String>,
}

fn unauthorized(reason: &'static str, device: Option<&str>) -> Refused {
    Refused {
        reason,
        error: ApiError::Unauthorized,
        device: device.map(str::to_owned),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn enroll(
    state: &AppState,
    conn: &Conn,
    credentials: Option<Basic>,
    csr: Vec<u8>,
    mode: Mode,
) -> Result<Issued, ApiError> {
    match enroll_inner(state, conn, credentials, csr, mode).await {
        Ok(issued) => Ok(issued),
        Err(r) => {
            let event = match mode {
                Mode::Enroll => EventKind::ProvisionFailed,
                Mode::Reenroll => EventKind::CertRenewed,
            };
            let actor = r
                .device
                .as_deref()
                .map_or_else(|| "unknown".to_owned(), |d| format!("device:{d}"));
            audit_refusal(state, event, &actor, conn, r.device.as_deref(), r.reason).await;
            Err(r.error)
        }
    }
}

async fn enroll_inner(
    state: &AppState,
    conn: &Conn,
    credentials: Option<Basic>,
    csr: Vec<u8>,
    mode: Mode,
) -> Result<Issued, Refused> {
    let bootstrap = conn.identity_of(PeerKind::Bootstrap).cloned();
    let operational = conn.identity_of(PeerKind::Device).cloned();
    // Who claims to be asking.
    let (device, method) = match (mode, &bootstrap, &operational, &credentials) {
        (_, Some(b), _, _) => (b.id().clone(), "factory_certificate"),
        (Mode::Reenroll, None, Some(op), _) => (op.id().clone(), "operational_certificate"),
        (Mode::Enroll, None, _, Some(basic)) => match DeviceId::parse(&basic.user) {
            Ok(d) => (d, "claim_token"),
            Err(_) => return Err(unauthorized("invalid_device_id", None)),
        },
        _ => return Err(unauthorized("no_credentials", None)),
    };
    let id = device.as_str().to_owned();
    if !state.per_device.allow(&id, Instant::now()) {
        return Err(Refused {
            reason: "rate_limited",
            error: ApiError::TooManyRequests,
            device: Some(id),
        });
    }
    // The CSR is checked before any credential is spent, so a bad CSR does not burn a token.
    let verified = verify_csr(&csr, &state.config_issuance().csr).map_err(|_| Refused {
        reason: "bad_csr",
        error: ApiError::BadRequest,
        device: Some(id.clone()),
    })?;
    if let Some(cn) = verified.common_name()
        && cn != &device
    {
        return Err(Refused {
            reason: "common_name_mismatch",
            error: ApiError::BadRequest,
            device: Some(id),
        });
    }
    let record = match state.store.device(&id).await {
        Ok(d) => Some(d),
        Err(StoreError::UnknownDevice(_)) => None,
        Err(_) => {
            return Err(Refused {
                reason: "registry_failure",
                error: ApiError::Internal,
                device: Some(id),
            });
        }
    };
    if let Some(b) = &bootstrap {
        check_factory_credential(state, b.serial(), &id).await?;
    }
    let mut retire_now = None;
    match (mode, method) {
        (Mode::Enroll, "claim_token") => {
            let basic = credentials
                .as_ref()
                .ok_or_else(|| unauthorized("no_credentials", None))?;
            let groups = record
                .as_ref()
                .map(|d| d.groups.clone())
                .unwrap_or_default();
            match claims::redeem(&state.claims, &basic.password, &id, &groups, now()).await {
                Ok(Ok(())) => {}
                Ok(Err(refusal)) => {
                    return Err(unauthorized(refusal_reason(refusal), Some(&id)));
                }
                Err(_) => {
                    return Err(Refused {
                        reason: "registry_failure",
                        error: ApiError::Internal,
                        device: Some(id),
                    });
                }
            }
            let Some(d) = &record else {
                return Err(unauthorized("unknown_device", Some(&id)));
            };
            if !d.state.may_receive_certificates() {
                return Err(unauthorized("device_retired", Some(&id)));
            }
        }
        (Mode::Enroll, _) => {
            // Factory certificate: first enrollment of a registered, manufactured device.
            let Some(d) = &record else {
                return Err(unauthorized("unknown_device", Some(&id)));
            };
            if d.state != DeviceState::Manufactured {
                return Err(unauthorized(
                    if d.state.may_receive_certificates() {
                        "already_enrolled"
                    } else {
                        "device_retired"
                    },
                    Some(&id),
                ));
            }
        }
        (Mode::Reenroll, "operational_certificate") => {
            let Some(d) = &record else {
                return Err(unauthorized("unknown_device", Some(&id)));
            };
            if !d.state.may_receive_certificates() {
                return Err(unauthorized("device_retired", Some(&id)));
            }
        }
        (Mode::Reenroll, _) => {
            // Factory certificate: only to replace an operational certificate that expired
            // (device offline) within the window, never one that was revoked.
            let Some(d) = &record else {
                return Err(unauthorized("unknown_device", Some(&id)));
            };
            if !d.state.may_receive_certificates() || d.state == DeviceState::Manufactured {
                return Err(unauthorized("device_retired_or_not_enrolled", Some(&id)));
            }
            let certs = state
                .store
                .certificates_for_device(&id)
                .await
                .map_err(|_| Refused {
                    reason: "registry_failure",
                    error: ApiError::Internal,
                    device: Some(id.clone()),
                })?;
            let ops: Vec<_> = certs
                .iter()
                .filter(|c| c.kind == CertificateKind::Operational)
                .collect();
            if ops.iter().any(|c| {
                c.status == CertificateStatus::Revoked
                    && c.revocation
                        .is_some_and(|(_, r)| r != ironroot_store::RevocationReason::Superseded)
            }) {
                return Err(unauthorized("certificate_was_revoked", Some(&id)));
            }
            let t = now();
            if ops
                .iter()
                .any(|c| c.status != CertificateStatus::Revoked && c.not_after > t)
            {
                return Err(unauthorized(
                    "operational_certificate_still_valid",
                    Some(&id),
                ));
            }
            let window = state.config.enrollment.expired_reenroll_window.as_secs() as i64;
            let latest = ops.iter().max_by_key(|c| c.not_after);
            match latest {
                Some(c) if c.status != CertificateStatus::Revoked && t - c.not_after <= window => {
                    retire_now = Some(c.serial.clone());
                }
                Some(_) => return Err(unauthorized("expired_beyond_window", Some(&id))),
                None => return Err(unauthorized("never_enrolled", Some(&id))),
            }
        }
    }
    let purpose = match mode {
        Mode::Enroll => IssuePurpose::Enroll,
        Mode::Reenroll => IssuePurpose::Reenroll,
    };
    let actor = format!("device:{id}");
    let issued = state
        .identity
        .issue(IssueRequest {
            device: device.clone(),
            csr,
            actor: actor.clone(),
            source: Some(conn.peer.ip()),
            purpose,
        })
        .await
        .map_err(|e| Refused {
            reason: e.kind(),
            error: identity_error(&e),
            device: Some(id.clone()),
        })?;
    let new_serial = issued.serial().to_string();
    let mut event = Event::new(
        match mode {
            Mode::Enroll => EventKind::DeviceProvisioned,
            Mode::Reenroll => EventKind::CertRenewed,
        },
        actor.clone(),
    )
    .subject("device", id.clone())
    .source(conn.peer.to_string())
    .detail("method", method)
    .detail("serial", new_serial.clone());
    if let Some(b) = &bootstrap {
        event = event.detail("factory_serial", b.serial().to_string());
    }
    if mode == Mode::Reenroll {
        if let Some(old) = &retire_now {
            event = event
                .detail("replaces", old.to_string())
                .detail("expired", "true");
        } else if let Some(op) = &operational {
            event = event.detail("replaces", op.serial().to_string());
        }
    }
    // The certificate is already in the audit log (cert.issued, written ahead by the identity
    // service); this entry adds how the device authenticated. Not awaited: the response does
    // not depend on it, and the audit writer batches it with its neighbours.
    let audit = state.audit.clone();
    tokio::spawn(async move {
        if let Err(e) = audit.record(event).await {
            log::error!("audit log write failed: {e}");
        }
    });
    if mode == Mode::Reenroll {
        if let Some(old) = retire_now {
            let _ = state.identity.retire(&old, &actor).await;
        } else if let Some(op) = &operational {
            state
                .rotations
                .schedule(state, &id, op.serial(), issued.serial())
                .await;
        }
    }
    Ok(issued)
}

/// A factory certificate counts only if the registry recorded it for this device
/// (`ironroot ca issue --factory`) and it is not revoked. The TLS layer already refused
/// serials in the live revoked set; the registry is the authority behind that set (a
/// revocation by another process reaches the set within the feed's polling interval, the
/// registry at once), and an unrecorded one could be neither listed nor revoked.
async fn check_factory_credential(
    state: &AppState,
    serial: &ironroot_pki::Serial,
    id: &str,
) -> Result<(), Refused> {
    match state.store.certificate(serial).await {
        Ok(c) if c.kind != CertificateKind::Factory || c.device_id.as_deref() != Some(id) => {
            Err(unauthorized("factory_certificate_not_recorded", Some(id)))
        }
        Ok(c) if c.status == CertificateStatus::Revoked => {
            Err(unauthorized("factory_certificate_revoked", Some(id)))
        }
        Ok(_) => Ok(()),
        Err(StoreError::UnknownCertificate(_)) => {
            Err(unauthorized("factory_certificate_not_recorded", Some(id)))
        }
        Err(_) => Err(Refused {
            reason: "registry_failure",
            error: ApiError::Internal,
            device: Some(id.to_owned()),
        }),
    }
}

fn refusal_reason(r: claims::ClaimRefusal) -> &'static str {
    match r {
        claims::ClaimRefusal::Unknown => "unknown_token",
        claims::ClaimRefusal::Expired => "expired_token",
        claims::ClaimRefusal::Used => "token_used",
        claims::ClaimRefusal::OtherDevice => "token_for_other_device",
    }
}

fn identity_error(e: &IdentityError) -> ApiError {
    match e {
        IdentityError::Csr(_) | IdentityError::CommonNameMismatch { .. } => ApiError::BadRequest,
        e if e.is_refusal() => ApiError::Unauthorized,
        _ => ApiError::Internal,
    }
}

impl AppState {
    fn config_issuance(&self) -> ironroot_pki::IssuancePolicy {
        ironroot_pki::IssuancePolicy::default()
    }
}

/// Base64 with line breaks every 64 characters (what `openssl base64 -d` reads by default).
fn base64_lines(der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 1);
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn pkcs7_response(certs: &[&[u8]], certs_only: bool) -> Response {
    let der = match crate::pkcs7::certs_only(certs) {
        Ok(d) => d,
        Err(_) => return ApiError::Internal.into_response(),
    };
    let mut resp = (StatusCode::OK, base64_lines(&der)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if certs_only {
            "application/pkcs7-mime; smime-type=certs-only"
        } else {
            "application/pkcs7-mime"
        }),
    );
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    resp
}

/// `GET /.well-known/est/cacerts`.
pub(crate) async fn cacerts(State(state): State<Shared>) -> Response {
    let certs: Vec<&[u8]> = state.ca_certs.iter().map(Vec::as_slice).collect();
    pkcs7_response(&certs, false)
}

/// `GET /.well-known/est/csrattrs`.
pub(crate) async fn csrattrs() -> Response {
    let mut resp = (StatusCode::OK, base64_lines(crate::pkcs7::CSR_ATTRS_DER)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/csrattrs"),
    );
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    resp
}

async fn est_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    check_length(headers, state.config.limits.max_body)?;
    if media_type(headers) != "application/pkcs10" {
        return Err(ApiError::UnsupportedMediaType);
    }
    let raw = read_body(state, body, state.config.limits.max_body).await?;
    let text: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD.decode(text).map_err(|_| ApiError::BadRequest)
}

async fn est_enroll(
    state: Shared,
    conn: Conn,
    headers: HeaderMap,
    body: Body,
    mode: Mode,
) -> Response {
    let csr = match est_body(&state, &headers, body).await {
        Ok(c) => c,
        Err(e) => return refuse_unread(&state, &conn, e).await,
    };
    match enroll(&state, &conn, basic(&headers), csr, mode).await {
        Ok(issued) => pkcs7_response(&[issued.der()], true),
        Err(e) => e.into_response(),
    }
}

/// Refuses a request whose body could not be read or parsed (so no device is known yet), and
/// audits the refusal.
async fn refuse_unread(state: &Shared, conn: &Conn, e: ApiError) -> Response {
    audit_refusal(
        state,
        EventKind::ProvisionFailed,
        "unknown",
        conn,
        None,
        &e.to_string(),
    )
    .await;
    e.into_response()
}

/// `POST /.well-known/est/simpleenroll`.
pub(crate) async fn simpleenroll(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    est_enroll(state, conn, headers, body, Mode::Enroll).await
}

/// `POST /.well-known/est/simplereenroll`.
pub(crate) async fn simplereenroll(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    est_enroll(state, conn, headers, body, Mode::Reenroll).await
}

#[derive(serde::Deserialize)]
struct JsonEnroll {
    /// Required with a claim token; ignored with a factory certificate.
    device_id: Option<String>,
    token: Option<String>,
    /// PEM or base64 DER.
    csr: String,
}

#[derive(serde::Serialize)]
struct JsonIssued {
    certificate: String,
    chain: String,
    serial: String,
    not_after: i64,
}

async fn json_common(
    state: Shared,
    conn: Conn,
    headers: HeaderMap,
    body: Body,
    mode: Mode,
) -> Response {
    let parsed = async {
        check_length(&headers, state.config.limits.max_body)?;
        if media_type(&headers) != "application/json" {
            return Err(ApiError::UnsupportedMediaType);
        }
        let raw = read_body(&state, body, state.config.limits.max_body).await?;
        serde_json::from_slice::<JsonEnroll>(&raw).map_err(|_| ApiError::BadRequest)
    }
    .await;
    let req = match parsed {
        Ok(r) => r,
        Err(e) => return refuse_unread(&state, &conn, e).await,
    };
    let csr = if req.csr.contains("-----BEGIN") {
        req.csr.into_bytes()
    } else {
        match STANDARD.decode(req.csr.split_whitespace().collect::<String>()) {
            Ok(d) => d,
            Err(_) => return ApiError::BadRequest.into_response(),
        }
    };
    let credentials = match (req.device_id, req.token) {
        (Some(user), Some(token)) => Some(Basic {
            user,
            password: zeroize::Zeroizing::new(token),
        }),
        _ => basic(&headers),
    };
    match enroll(&state, &conn, credentials, csr, mode).await {
        Ok(issued) => Json(JsonIssued {
            certificate: issued.pem(),
            chain: state.identity.chain_pem().to_owned(),
            serial: issued.serial().to_string(),
            not_after: issued.not_after().unix_timestamp(),
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/enroll` (JSON).
pub(crate) async fn json_enroll(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    json_common(state, conn, headers, body, Mode::Enroll).await
}

/// `POST /api/v1/reenroll` (JSON).
pub(crate) async fn json_reenroll(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    json_common(state, conn, headers, body, Mode::Reenroll).await
}
