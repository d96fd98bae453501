//! CRL publication: one CRL per trusted intermediate and one of the factory CA from the
//! registry's revoked set, plus the root's CRL of revoked CAs, written atomically to
//! `<data_dir>/pki/crl.pem`.

use std::path::{Path, PathBuf};

use ironroot_audit::{Event, EventKind};
use ironroot_pki::CaDirectory;
use ironroot_store::RevocationReason;
use time::OffsetDateTime;

use super::{IdentityService, SERVICE_ACTOR};
use crate::error::IdentityError;

/// File under `<data_dir>/pki/` holding the latest published CRLs (every trusted intermediate's
/// CRL of revoked device certificates, then the root's CRL of revoked CAs), PEM.
pub const CRL_FILE: &str = "crl.pem";

pub(super) fn pki_reason(reason: RevocationReason) -> ironroot_pki::RevocationReason {
    use ironroot_pki::RevocationReason as P;
    match reason {
        RevocationReason::KeyCompromise => P::KeyCompromise,
        RevocationReason::CaCompromise => P::CaCompromise,
        RevocationReason::AffiliationChanged => P::AffiliationChanged,
        RevocationReason::Superseded => P::Superseded,
        RevocationReason::CessationOfOperation => P::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => P::PrivilegeWithdrawn,
        _ => P::Unspecified,
    }
}

impl IdentityService {
    /// Signs a CRL per trusted intermediate and one of the factory CA, each listing every
    /// certificate it issued that the registry holds as revoked, and writes them (then the root's CRL of revoked CAs) to
    /// [`IdentityService::crl_path`] atomically. Returns the current intermediate's CRL.
    pub async fn write_crl(&self) -> Result<ironroot_pki::Crl, IdentityError> {
        let revoked = self.inner.store.revoked_certificates().await?;
        // Signing (a token round trip per CRL), reading the root CRL and the fsync'd write
        // block: all on a blocking thread.
        let service = self.clone();
        let (current, listed) =
            tokio::task::spawn_blocking(move || service.sign_and_write_crl(&revoked))
                .await
                .map_err(|_| IdentityError::SignerStopped)??;
        let _ = self
            .inner
            .audit
            .record(
                Event::new(EventKind::CrlPublished, SERVICE_ACTOR)
                    .subject("ca", self.issuer_name())
                    .detail("entries", listed.to_string()),
            )
            .await;
        Ok(current)
    }

    /// The blocking half of [`IdentityService::write_crl`]: signs, writes; returns the current
    /// intermediate's CRL and how many entries were listed.
    fn sign_and_write_crl(
        &self,
        revoked: &[ironroot_store::RevokedCertificate],
    ) -> Result<(ironroot_pki::Crl, usize), IdentityError> {
        let now = OffsetDateTime::now_utc();
        let mut text = String::new();
        let mut current = None;
        let mut listed = 0usize;
        // Every trusted intermediate, then the factory CA (revoked factory credentials), so
        // `openssl verify -crl_check` finds a CRL for every leaf ironroot issues.
        let factory = std::iter::once(self.inner.ca.factory());
        for ca in self
            .inner
            .ca
            .intermediates()
            .map(|(ca, _)| ca)
            .chain(factory)
        {
            let name = ca.certificate().common_name();
            let entries: Vec<ironroot_pki::RevokedEntry> = revoked
                .iter()
                .filter(|r| r.issuer == name)
                .filter_map(|r| {
                    Some(ironroot_pki::RevokedEntry {
                        serial: r.serial.clone(),
                        revoked_at: OffsetDateTime::from_unix_timestamp(r.revoked_at).ok()?,
                        reason: pki_reason(r.reason),
                    })
                })
                .collect();
            listed += entries.len();
            let crl = ca.sign_crl(&entries, now, self.inner.options.crl_lifetime)?;
            text.push_str(&crl.pem());
            // The first is the current intermediate's (`intermediates()` lists it first).
            current.get_or_insert(crl);
        }
        text.push_str(&CaDirectory::new(&self.inner.options.data_dir).root_crl_pem()?);
        let path = self.crl_path();
        // Readers see the old or the new CRL, never half of one, even with two writers.
        ironroot_fs::write_atomically(&path, text.as_bytes())?;
        // `intermediates()` is never empty: `open_online` refuses a CA without one.
        let current = current.ok_or_else(|| IdentityError::Io {
            path,
            source: std::io::Error::other("no trusted intermediate"),
        })?;
        Ok((current, listed))
    }
}

/// `<data_dir>/pki/crl.pem`.
pub fn crl_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pki").join(CRL_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_reason_maps_to_its_crl_reason() {
        assert_eq!(
            pki_reason(RevocationReason::Superseded),
            ironroot_pki::RevocationReason::Superseded
        );
        assert_eq!(
            pki_reason(RevocationReason::PrivilegeWithdrawn),
            ironroot_pki::RevocationReason::PrivilegeWithdrawn
        );
        for r in RevocationReason::ALL {
            if *r != RevocationReason::Unspecified {
                assert_ne!(pki_reason(*r), ironroot_pki::RevocationReason::Unspecified);
            }
        }
    }
}
