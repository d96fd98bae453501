//! Root operations on an existing hierarchy: rotating the intermediate, revoking a CA
//! certificate, and refreshing the public files (chain, root CRL) after either.

use super::*;

impl CaDirectory {
    /// Creates intermediate generation n+1 (signed with the root key, which must be
    /// available: `root_key` or `root.key.enc` here). The previous current intermediate stays
    /// trusted for `overlap` (or until it expires, if sooner), so certificates it issued keep
    /// working while devices renew.
    pub fn rotate_intermediate(
        &self,
        root_key: Option<&Path>,
        root_passphrase: &Passphrase,
        online: &OnlineKeyBackend,
        kdf: KdfParams,
        overlap: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<WrittenFile>, CaError> {
        let mut state = self.load_state()?;
        let root = self.unlock_root(root_key, root_passphrase)?;
        let generation = state
            .intermediates
            .iter()
            .map(|r| r.generation)
            .max()
            .unwrap_or(0)
            + 1;
        let mut written = Vec::new();
        let name = format!("intermediate-{generation}");
        let (key, loc) = self.new_online_key(online, &name, kdf, &mut written)?;
        let cert = sign_subordinate(
            &root,
            CaRole::Intermediate,
            &intermediate_common_name(generation),
            key.as_ref(),
            &state.organization,
            HierarchyPolicy::default().intermediate_validity,
            now,
        )?;
        for rec in state
            .intermediates
            .iter_mut()
            .filter(|r| r.retired_at.is_none())
        {
            let old = self.read_cert(&format!("intermediate-{}.crt.pem", rec.generation))?;
            rec.retired_at = Some(now);
            rec.trusted_until = Some((now + overlap).min(old.not_after()));
        }
        state.intermediates.push(IntermediateRecord {
            generation,
            key: loc,
            retired_at: None,
            trusted_until: None,
        });
        let path = self.file(&format!("{name}.crt.pem"));
        write_file(&path, cert.pem().as_bytes(), Handling::Public)?;
        written.push(WrittenFile {
            path,
            what: format!("intermediate CA certificate, generation {generation}"),
            handling: Handling::Public,
        });
        self.save_state(&state)?;
        written.extend(self.refresh_public_files(&root, &state, now)?);
        Ok(written)
    }

    /// Revokes intermediate `generation` (or the factory CA when `None`): records it, re-signs
    /// the root CRL with the root key. Servers drop the CA at their next reload; add the serial
    /// to the live [`RevocationSet`](crate::RevocationSet) to cut it at once.
    pub fn revoke_ca(
        &self,
        root_key: Option<&Path>,
        root_passphrase: &Passphrase,
        generation: Option<u32>,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<(RevokedEntry, Vec<WrittenFile>), CaError> {
        let mut state = self.load_state()?;
        let cert = match generation {
            Some(g) => {
                if !state.intermediates.iter().any(|r| r.generation == g) {
                    return Err(CaError::NoSuchGeneration(g));
                }
                self.read_cert(&format!("intermediate-{g}.crt.pem"))?
            }
            None => self.factory_certificate()?,
        };
        let root = self.unlock_root(root_key, root_passphrase)?;
        let entry = RevokedEntry {
            serial: cert.serial().clone(),
            revoked_at: now,
            reason,
        };
        if !state.revoked_cas.iter().any(|r| r.serial == entry.serial) {
            state.revoked_cas.push(entry.clone());
        }
        self.save_state(&state)?;
        let written = self.refresh_public_files(&root, &state, now)?;
        Ok((entry, written))
    }

    pub(super) fn refresh_public_files(
        &self,
        root: &IssuingCa,
        state: &CaState,
        now: OffsetDateTime,
    ) -> Result<Vec<WrittenFile>, CaError> {
        let crl = root.sign_crl(&state.revoked_cas, now, ROOT_CRL_LIFETIME)?;
        let crl_path = self.file("root.crl.pem");
        write_file(&crl_path, crl.pem().as_bytes(), Handling::Public)?;
        let chain_path = self.file("chain.pem");
        write_file(
            &chain_path,
            self.chain_pem(now)?.as_bytes(),
            Handling::Public,
        )?;
        let ocsp = self.write_ca_ocsp(root, state, now, crl.next_update())?;
        Ok(vec![
            ocsp,
            WrittenFile {
                path: crl_path,
                what: "CRL signed by the root (revoked CAs)".into(),
                handling: Handling::Public,
            },
            WrittenFile {
                path: chain_path,
                what: "CA chain: trusted intermediates + root".into(),
                handling: Handling::Public,
            },
        ])
    }

    /// Has the root sign an OCSP answer for every intermediate generation and the factory CA
    /// (revoked ones as revoked), valid until `next_update` (the root CRL's), and writes them
    /// to `pki/ocsp-ca.pem`: the server serves these for CA certificates, whose issuer (the
    /// root) it cannot speak for.
    pub(super) fn write_ca_ocsp(
        &self,
        root: &IssuingCa,
        state: &CaState,
        now: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<WrittenFile, CaError> {
        let state_of = |ca: &crate::ca::CaCertificate| match state
            .revoked_cas
            .iter()
            .find(|e| &e.serial == ca.serial())
        {
            Some(e) => crate::ocsp::CertState::Revoked {
                at: e.revoked_at,
                reason: e.reason,
            },
            None => crate::ocsp::CertState::Good,
        };
        let mut cas = Vec::new();
        for rec in &state.intermediates {
            let cert = self.read_cert(&format!("intermediate-{}.crt.pem", rec.generation))?;
            cas.push((cert.clone(), state_of(&cert)));
        }
        let factory = self.read_cert("factory.crt.pem")?;
        cas.push((factory.clone(), state_of(&factory)));
        let text = crate::ocsp::sign_ca_responses(root, &cas, now, next_update)?;
        let path = self.file(crate::ocsp::CA_RESPONSES_FILE);
        write_file(&path, text.as_bytes(), Handling::Public)?;
        Ok(WrittenFile {
            path,
            what: "OCSP answers signed by the root for the CA certificates".into(),
            handling: Handling::Public,
        })
    }
}
