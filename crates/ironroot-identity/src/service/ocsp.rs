//! OCSP answers (RFC 6960): the delegated responders of the online CAs, their automatic
//! re-issuance, and the status of each asked-about serial from the registry and the live
//! revoked set. The HTTP route only hands bytes in and out.
//!
//! Status rules, per CertID of a CA this server holds:
//! - serial revoked in the live set or in the registry → `revoked` (time and reason from the
//!   registry row);
//! - serial recorded in the registry as issued by that CA → `good`;
//! - anything else (never issued, issued by another CA, not a valid serial) → `unknown`.
//!
//! The responder certificates are issued at [`IdentityService::start_ocsp_responder`] (server
//! start) with keys generated in memory, and re-issued when less than
//! [`OCSP_RENEW_BEFORE`] of their [`OCSP_RESPONDER_LIFETIME`] is left, by the first request
//! that notices; each issuance is audited as `ocsp.responder_issued`.

use std::sync::{Arc, RwLock};

use ironroot_audit::{Event, EventKind};
use ironroot_pki::ocsp::{
    CA_RESPONSES_FILE, CaResponses, CertState, DelegatedResponder, OcspError, OcspRequest,
    OcspResponder, OcspStatus, Route,
};
use ironroot_pki::{IssuingCa, Serial};
use ironroot_store::{CertificateStatus, StoreError};
use time::{Duration, OffsetDateTime};

use super::crl::pki_reason;
use super::{IdentityService, SERVICE_ACTOR};
use crate::error::IdentityError;

/// How long a delegated responder certificate is valid.
pub const OCSP_RESPONDER_LIFETIME: Duration = Duration::days(7);

/// A responder certificate is re-issued when less than this is left of it.
pub const OCSP_RENEW_BEFORE: Duration = Duration::days(2);

/// How long one answer is valid (its nextUpdate): short, since answers come from the live set.
pub const OCSP_RESPONSE_VALIDITY: Duration = Duration::minutes(5);

/// The current responders and the lock that serialises their re-issuance.
#[derive(Default)]
pub(super) struct OcspState {
    current: RwLock<Option<Arc<OcspResponder>>>,
    renewing: tokio::sync::Mutex<()>,
}

impl IdentityService {
    /// Issues a delegated OCSP responder for every trusted intermediate and the factory CA
    /// (fresh in-memory keys, signed through each CA's own signer) and makes them current.
    /// Each issuance is audited. Called once at server start; later renewals happen on their own.
    pub async fn start_ocsp_responder(&self) -> Result<(), IdentityError> {
        let _guard = self.inner.ocsp.renewing.lock().await;
        self.issue_ocsp_responders().await
    }

    /// Answers an OCSP request (parsed with [`OcspRequest::from_der`] or
    /// [`OcspRequest::from_get_path`]; a parse error is answered `malformedRequest`). Always
    /// returns a DER `OCSPResponse`: failures become `internalError`, `tryLater` or
    /// `unauthorized` responses and are logged without request bytes.
    pub async fn answer_ocsp(&self, request: Result<OcspRequest, OcspError>) -> Vec<u8> {
        let request = match request {
            Ok(r) => r,
            Err(e) => return e.status().to_der(),
        };
        let responder = match self.current_ocsp_responder().await {
            Ok(r) => r,
            Err(e) => {
                log::warn!("OCSP: no responder certificate available: {e}");
                return OcspStatus::TryLater.to_der();
            }
        };
        let delegated = match responder.route(&request) {
            Ok(Route::Delegated(d)) => d,
            Ok(Route::Root) => return self.answer_for_ca_certificate(&request).await,
            Err(status) => return status.to_der(),
        };
        let mut states = Vec::with_capacity(request.queries().len());
        for q in request.queries() {
            match self.ocsp_state(delegated, q.serial()).await {
                Ok(s) => states.push(s),
                Err(e) => {
                    log::error!("OCSP: registry lookup failed: {e}");
                    return OcspStatus::InternalError.to_der();
                }
            }
        }
        let now = OffsetDateTime::now_utc();
        match delegated.respond(&request, &states, now, OCSP_RESPONSE_VALIDITY) {
            Ok(der) => der,
            Err(e) => {
                log::error!("OCSP: signing the response failed: {e}");
                e.status().to_der()
            }
        }
    }

    /// A CA certificate's CertID: the root (offline) signed the answers ahead of time
    /// (`pki/ocsp-ca.pem`, written whenever a command unlocks the root); serve the matching
    /// one, or `tryLater` when it is missing or stale.
    async fn answer_for_ca_certificate(&self, request: &OcspRequest) -> Vec<u8> {
        let path = self
            .inner
            .options
            .data_dir
            .join("pki")
            .join(CA_RESPONSES_FILE);
        let text = match tokio::fs::read(&path).await {
            Ok(t) => t,
            Err(e) => {
                log::warn!(
                    "OCSP: no root-signed answers for CA certificates ({}: {e}); answering tryLater",
                    path.display()
                );
                return OcspStatus::TryLater.to_der();
            }
        };
        let stored = match CaResponses::from_pem(&text) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("OCSP: {}: {e}; answering tryLater", path.display());
                return OcspStatus::TryLater.to_der();
            }
        };
        match stored.answer(request, OffsetDateTime::now_utc()) {
            Ok(der) => der.to_vec(),
            Err(status) => {
                if status == OcspStatus::TryLater {
                    log::warn!(
                        "OCSP: no current root-signed answer for a CA certificate in {}; re-sign with a root operation (e.g. `ironroot ca rotate-intermediate`)",
                        path.display()
                    );
                }
                status.to_der()
            }
        }
    }

    /// The status of `serial` as issued by `responder`'s CA.
    async fn ocsp_state(
        &self,
        responder: &DelegatedResponder,
        serial: Option<&Serial>,
    ) -> Result<CertState, IdentityError> {
        let Some(serial) = serial else {
            return Ok(CertState::Unknown);
        };
        let cert = match self.inner.store.certificate(serial).await {
            Ok(c) => c,
            Err(StoreError::UnknownCertificate(_)) => return Ok(CertState::Unknown),
            Err(e) => return Err(e.into()),
        };
        if cert.issuer != responder.ca().common_name() {
            return Ok(CertState::Unknown);
        }
        let live = self.inner.revocations.is_revoked(serial);
        if !live && cert.status != CertificateStatus::Revoked {
            return Ok(CertState::Good);
        }
        // Revoked in the live set before the registry row was read back (or the other way
        // round): revoked either way; the row has the time and reason once it is committed.
        let (at, reason) = match cert.revocation {
            Some((at, reason)) => (
                OffsetDateTime::from_unix_timestamp(at)
                    .unwrap_or_else(|_| OffsetDateTime::now_utc()),
                pki_reason(reason),
            ),
            None => (
                OffsetDateTime::now_utc(),
                ironroot_pki::RevocationReason::Unspecified,
            ),
        };
        Ok(CertState::Revoked { at, reason })
    }

    /// The current responders, re-issued first when they are due.
    async fn current_ocsp_responder(&self) -> Result<Arc<OcspResponder>, IdentityError> {
        let due = |r: &Option<Arc<OcspResponder>>| match r.as_ref().and_then(|r| r.expires()) {
            Some(end) => OffsetDateTime::now_utc() + OCSP_RENEW_BEFORE >= end,
            None => true,
        };
        {
            let current = self.read_ocsp();
            if !due(&current) {
                return current.ok_or(IdentityError::SignerStopped);
            }
        }
        let _guard = self.inner.ocsp.renewing.lock().await;
        // Another request may have renewed while this one waited.
        if due(&self.read_ocsp()) {
            self.issue_ocsp_responders().await?;
        }
        self.read_ocsp().ok_or(IdentityError::SignerStopped)
    }

    fn read_ocsp(&self) -> Option<Arc<OcspResponder>> {
        match self.inner.ocsp.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Issues one responder per online CA (on a blocking thread: a token signs), installs
    /// them, and audits each issuance.
    async fn issue_ocsp_responders(&self) -> Result<(), IdentityError> {
        let service = self.clone();
        let responder = tokio::task::spawn_blocking(move || {
            let now = OffsetDateTime::now_utc();
            let ca = &service.inner.ca;
            let cas: Vec<&IssuingCa> = ca
                .intermediates()
                .map(|(c, _)| c)
                .chain(std::iter::once(ca.factory()))
                .collect();
            // A CA that cannot sign (expired factory CA, token down) loses OCSP, not the
            // server: its CertIDs are answered `unauthorized` until a later re-issuance.
            let mut responders = Vec::with_capacity(cas.len());
            let mut first_error = None;
            for c in cas {
                match DelegatedResponder::issue(c, now, OCSP_RESPONDER_LIFETIME) {
                    Ok(r) => responders.push(r),
                    Err(e) => {
                        log::warn!(
                            "OCSP: no responder certificate for '{}': {e}",
                            c.certificate().common_name()
                        );
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let (true, Some(e)) = (responders.is_empty(), first_error) {
                return Err(IdentityError::from(e));
            }
            OcspResponder::new(ca.root(), responders).map_err(IdentityError::from)
        })
        .await
        .map_err(|_| IdentityError::SignerStopped)??;
        let responder = Arc::new(responder);
        for r in responder.responders() {
            let _ = self
                .inner
                .audit
                .record(
                    Event::new(EventKind::OcspResponderIssued, SERVICE_ACTOR)
                        .subject("ca", r.ca().common_name())
                        .detail("serial", r.certificate().serial().to_string())
                        .detail(
                            "not_after",
                            r.certificate().not_after().unix_timestamp().to_string(),
                        ),
                )
                .await;
        }
        match self.inner.ocsp.current.write() {
            Ok(mut g) => *g = Some(responder),
            Err(poisoned) => *poisoned.into_inner() = Some(responder),
        }
        Ok(())
    }
}
