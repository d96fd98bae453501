//! `ca init`: creating the hierarchy and its files, and new online keys.

use super::*;

impl CaDirectory {
    /// Creates the hierarchy: root (key encrypted under the root passphrase), intermediate
    /// generation 1, factory CA, the first operator certificate, chain and root CRL.
    pub fn init(
        &self,
        opts: InitOptions,
        now: OffsetDateTime,
    ) -> Result<Vec<WrittenFile>, CaError> {
        if self.is_initialized() {
            return Err(CaError::AlreadyInitialized(self.dir.clone()));
        }
        fs::create_dir_all(&self.dir).map_err(CaError::io("creating", &self.dir))?;
        let mut written = Vec::new();

        let root_key = Arc::new(SoftwareKey::generate()?);
        let root = create_root(root_key.clone(), &opts.hierarchy, now)?;
        let root_key_text = root_key.to_encrypted(&opts.root_passphrase, opts.kdf)?;

        let (online, generated) = match opts.online {
            Some(b) => (b, None),
            None => {
                let pass = Passphrase::random().map_err(|source| CaError::KeyFile {
                    path: self.file("online-passphrase"),
                    source,
                })?;
                (OnlineKeyBackend::EncryptedFile(pass.clone()), Some(pass))
            }
        };

        let (inter_key, inter_loc) =
            self.new_online_key(&online, "intermediate-1", opts.kdf, &mut written)?;
        let inter_cert = sign_subordinate(
            &root,
            CaRole::Intermediate,
            &intermediate_common_name(1),
            inter_key.as_ref(),
            &opts.hierarchy.organization,
            opts.hierarchy.intermediate_validity,
            now,
        )?;
        let intermediate = IssuingCa::new(inter_cert, CaRole::Intermediate, inter_key)?;

        let (factory_key, factory_loc) =
            self.new_online_key(&online, "factory", opts.kdf, &mut written)?;
        let factory_cert = sign_subordinate(
            &root,
            CaRole::Factory,
            factory_common_name(),
            factory_key.as_ref(),
            &opts.hierarchy.organization,
            opts.hierarchy.factory_validity,
            now,
        )?;

        let operator_key = SoftwareKey::generate()?;
        let operator_subject = SubjectKey::p256(operator_key.public_key())
            .map_err(|e| CaError::Issue(crate::error::IssueError::Csr(e)))?;
        let operator = intermediate.issue_operator(
            &operator_subject,
            &opts.operator,
            &IssuancePolicy::default(),
            now,
        )?;

        let state = CaState {
            version: STATE_VERSION,
            organization: opts.hierarchy.organization.clone(),
            intermediates: vec![IntermediateRecord {
                generation: 1,
                key: inter_loc,
                retired_at: None,
                trusted_until: None,
            }],
            factory: factory_loc,
            revoked_cas: Vec::new(),
        };
        let root_crl = root.sign_crl(&[], now, ROOT_CRL_LIFETIME)?;

        let mut put =
            |name: &str, data: &[u8], what: &str, handling: Handling| -> Result<(), CaError> {
                let path = self.file(name);
                write_file(&path, data, handling)?;
                written.push(WrittenFile {
                    path,
                    what: what.to_owned(),
                    handling,
                });
                Ok(())
            };
        put(
            "root.crt.pem",
            root.certificate().pem().as_bytes(),
            "root CA certificate (trust anchor)",
            Handling::Public,
        )?;
        put(
            "root.key.enc",
            root_key_text.as_bytes(),
            "root CA private key, encrypted with the root passphrase",
            Handling::Offline,
        )?;
        put(
            "root.crl.pem",
            root_crl.pem().as_bytes(),
            "CRL signed by the root (revoked CAs)",
            Handling::Public,
        )?;
        put(
            "intermediate-1.crt.pem",
            intermediate.certificate().pem().as_bytes(),
            "intermediate CA certificate, generation 1",
            Handling::Public,
        )?;
        put(
            "factory.crt.pem",
            factory_cert.pem().as_bytes(),
            "factory CA certificate (manufacturing credentials)",
            Handling::Public,
        )?;
        put(
            "operator.crt.pem",
            operator.pem().as_bytes(),
            "operator client certificate",
            Handling::Public,
        )?;
        put(
            "operator.key.pem",
            operator_key.to_pkcs8_pem()?.as_bytes(),
            "operator private key (unencrypted)",
            Handling::OperatorSecret,
        )?;
        let chain = format!(
            "{}{}",
            intermediate.certificate().pem(),
            root.certificate().pem()
        );
        put(
            "chain.pem",
            chain.as_bytes(),
            "CA chain: intermediate + root",
            Handling::Public,
        )?;
        if let Some(pass) = &generated {
            put(
                "online-passphrase",
                pass.expose(),
                "generated passphrase of the online CA keys",
                Handling::OnlineSecret,
            )?;
        }
        let ocsp = self.write_ca_ocsp(&root, &state, now, root_crl.next_update())?;
        written.push(ocsp);
        // The state file goes last: its presence marks a complete CA.
        self.save_state(&state)?;
        written.push(WrittenFile {
            path: self.file(STATE_FILE),
            what: "CA state (generations, key locations; no secrets)".into(),
            handling: Handling::State,
        });
        Ok(written)
    }

    pub(super) fn new_online_key(
        &self,
        backend: &OnlineKeyBackend,
        name: &str,
        kdf: KdfParams,
        written: &mut Vec<WrittenFile>,
    ) -> Result<(Arc<dyn CaSigner>, KeyLocation), CaError> {
        match backend {
            OnlineKeyBackend::EncryptedFile(pass) => {
                let key = SoftwareKey::generate()?;
                let file_name = format!("{name}.key.enc");
                let path = self.file(&file_name);
                write_file(
                    &path,
                    key.to_encrypted(pass, kdf)?.as_bytes(),
                    Handling::OnlineSecret,
                )?;
                written.push(WrittenFile {
                    path,
                    what: format!("{name} CA private key, encrypted with the online passphrase"),
                    handling: Handling::OnlineSecret,
                });
                Ok((Arc::new(key), KeyLocation::File { path: file_name }))
            }
            OnlineKeyBackend::Pkcs11 {
                module,
                token_label,
                pin,
            } => {
                let reference = Pkcs11KeyRef {
                    module: module.clone(),
                    token_label: token_label.clone(),
                    key_label: format!("ironroot-{name}"),
                };
                let key = Pkcs11Signer::generate(&reference, pin)?;
                Ok((Arc::new(key), KeyLocation::Pkcs11(reference)))
            }
        }
    }
}
