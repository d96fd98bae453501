//! Opening keys: unlocking the root for root operations, and the online CAs at server start
//! ([`OnlineCa`]).

use super::*;

impl CaDirectory {
    pub(super) fn unlock_root(
        &self,
        root_key: Option<&Path>,
        pass: &Passphrase,
    ) -> Result<IssuingCa, CaError> {
        let path = root_key
            .map(Path::to_owned)
            .unwrap_or_else(|| self.file("root.key.enc"));
        let text = fs::read(&path).map_err(CaError::io("reading root key", &path))?;
        let key = SoftwareKey::open_encrypted(&text, pass).map_err(|e| match e {
            crate::signer::SignerError::KeyFile(source) => CaError::KeyFile {
                path: path.clone(),
                source,
            },
            other => CaError::Signer(other),
        })?;
        Ok(IssuingCa::new(
            self.root_certificate()?,
            CaRole::Root,
            Arc::new(key),
        )?)
    }

    pub(super) fn open_key(
        &self,
        loc: &KeyLocation,
        secrets: &OnlineSecrets,
    ) -> Result<Arc<dyn CaSigner>, CaError> {
        match loc {
            KeyLocation::File { path } => {
                let path = self.file(path);
                let pass = secrets
                    .passphrase
                    .as_ref()
                    .ok_or(CaError::OnlinePassphraseMissing)?;
                let text = fs::read(&path).map_err(CaError::io("reading", &path))?;
                let key = SoftwareKey::open_encrypted(&text, pass).map_err(|e| match e {
                    crate::signer::SignerError::KeyFile(source) => CaError::KeyFile {
                        path: path.clone(),
                        source,
                    },
                    other => CaError::Signer(other),
                })?;
                Ok(Arc::new(key))
            }
            KeyLocation::Pkcs11(reference) => {
                let pin = secrets
                    .pkcs11_pin
                    .as_ref()
                    .ok_or(CaError::Pkcs11PinMissing)?;
                Ok(Arc::new(Pkcs11Signer::open(reference, pin)?))
            }
        }
    }

    /// Unlocks the online CAs (server start): every intermediate still trusted, and the
    /// factory CA. The root key is not touched.
    pub fn open_online(
        &self,
        secrets: &OnlineSecrets,
        now: OffsetDateTime,
    ) -> Result<OnlineCa, CaError> {
        let state = self.load_state()?;
        let root = self.root_certificate()?;
        let trusted = self.trusted_intermediates(now)?;
        let mut intermediates = Vec::new();
        for issuer in trusted {
            let rec = state
                .intermediates
                .iter()
                .find(|r| {
                    intermediate_common_name(r.generation) == issuer.certificate.common_name()
                })
                .ok_or_else(|| CaError::BadState {
                    path: self.file(STATE_FILE),
                    reason: format!("no record for {}", issuer.certificate.common_name()),
                })?;
            let key = self.open_key(&rec.key, secrets)?;
            intermediates.push((
                IssuingCa::new(issuer.certificate, CaRole::Intermediate, key)?,
                issuer.trusted_until,
            ));
        }
        if intermediates.is_empty() {
            return Err(CaError::BadState {
                path: self.file(STATE_FILE),
                reason:
                    "no intermediate CA is trusted any more; run `ironroot ca rotate-intermediate`"
                        .into(),
            });
        }
        let factory_key = self.open_key(&state.factory, secrets)?;
        let factory = IssuingCa::new(self.factory_certificate()?, CaRole::Factory, factory_key)?;
        Ok(OnlineCa {
            root,
            intermediates,
            factory,
            revoked_cas: state.revoked_cas,
        })
    }
}

impl OnlineCa {
    /// The root certificate (trust anchor).
    pub fn root(&self) -> &CaCertificate {
        &self.root
    }

    /// The intermediate that issues new certificates (the newest generation).
    pub fn issuing(&self) -> &IssuingCa {
        &self.intermediates[0].0
    }

    /// Every trusted intermediate (newest first) with its trust deadline.
    pub fn intermediates(&self) -> impl Iterator<Item = (&IssuingCa, Option<OffsetDateTime>)> {
        self.intermediates.iter().map(|(ca, until)| (ca, *until))
    }

    /// The factory CA.
    pub fn factory(&self) -> &IssuingCa {
        &self.factory
    }

    /// Revoked CA certificates (for the live revocation set).
    pub fn revoked_cas(&self) -> &[RevokedEntry] {
        &self.revoked_cas
    }

    /// Issuers for a verifier that accepts operational certificates (broker, admin API).
    pub fn device_issuers(&self) -> Vec<TrustedIssuer> {
        self.intermediates
            .iter()
            .map(|(ca, until)| TrustedIssuer {
                certificate: ca.certificate().clone(),
                trusted_until: *until,
            })
            .collect()
    }

    /// Issuers for the enrollment endpoint: the intermediates plus the factory CA.
    pub fn enrollment_issuers(&self) -> Vec<TrustedIssuer> {
        let mut v = self.device_issuers();
        v.push(TrustedIssuer {
            certificate: self.factory.certificate().clone(),
            trusted_until: None,
        });
        v
    }

    /// Signs one CRL per trusted intermediate listing `revoked` (device and operator
    /// certificates), valid for `lifetime` (short: hours to a day).
    pub fn sign_crls(
        &self,
        revoked: &[RevokedEntry],
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Vec<Crl>, CaError> {
        self.intermediates
            .iter()
            .map(|(ca, _)| ca.sign_crl(revoked, now, lifetime).map_err(CaError::from))
            .collect()
    }
}
