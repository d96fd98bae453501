//! The CA's files in the data directory, and the operations on them (init, rotation,
//! CA revocation, loading the online CAs at server start).
//!
//! # Layout (`<data-dir>/pki/`)
//!
//! | file | content | handling |
//! |---|---|---|
//! | `root.crt.pem` | root CA certificate | public: the trust anchor for devices and `openssl verify` |
//! | `root.key.enc` | root key, encrypted with the root passphrase | **offline**: move to offline storage after `ca init`; needed only to rotate or revoke CAs |
//! | `root.crl.pem` | CRL signed by the root (revoked intermediates / factory CA) | public; re-signed at every root operation, valid 1 year |
//! | `intermediate-<g>.crt.pem` | intermediate CA generation `g` | public |
//! | `intermediate-<g>.key.enc` | its key, encrypted with the online passphrase (absent with PKCS#11) | online secret, read at server start |
//! | `factory.crt.pem`, `factory.key.enc` | factory CA for manufacturing credentials | cert public; key online secret |
//! | `operator.crt.pem`, `operator.key.pem` | first operator client certificate and its **unencrypted** key (0600) | hand to the operator, then delete here |
//! | `chain.pem` | trusted intermediates (newest first) + root | public: `openssl verify -CAfile chain.pem` |
//! | `online-passphrase` | generated online passphrase (only when none was given, 0600) | online secret: move into your secret store |
//! | `ca-state.json` | generations, key locations (file or PKCS#11 reference), overlap windows, revoked CA serials | no secrets |

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::ca::{CaCertificate, CaRole, IssuingCa};
use crate::csr::SubjectKey;
use crate::device_id::DeviceId;
use crate::error::CaError;
use crate::hierarchy::{
    HierarchyPolicy, create_root, factory_common_name, intermediate_common_name, sign_subordinate,
};
use crate::issue::IssuancePolicy;
use crate::keyfile::{KdfParams, Passphrase};
use crate::pkcs11::{Pin, Pkcs11KeyRef, Pkcs11Signer};
use crate::revocation::{Crl, RevocationReason, RevokedEntry};
use crate::signer::{CaSigner, SoftwareKey};
use crate::verifier::TrustedIssuer;

const STATE_FILE: &str = "ca-state.json";
const STATE_VERSION: u32 = 1;
/// Root CRLs are signed only when the root is unlocked, so they live long.
const ROOT_CRL_LIFETIME: Duration = Duration::days(365);

/// Where the online CA keys (intermediate and factory) are created.
#[derive(Debug)]
pub enum OnlineKeyBackend {
    /// Encrypted key files under the online passphrase.
    EncryptedFile(Passphrase),
    /// Keys generated inside a PKCS#11 token (labels `ironroot-intermediate-<g>`,
    /// `ironroot-factory`).
    Pkcs11 {
        /// Module path.
        module: PathBuf,
        /// Token label.
        token_label: String,
        /// User PIN.
        pin: Pin,
    },
}

/// Secrets that unlock the online keys at server start.
#[derive(Debug, Default)]
pub struct OnlineSecrets {
    /// Passphrase of the `*.key.enc` online key files.
    pub passphrase: Option<Passphrase>,
    /// PIN of the PKCS#11 token holding online keys.
    pub pkcs11_pin: Option<Pin>,
}

/// Options of [`CaDirectory::init`].
#[derive(Debug)]
pub struct InitOptions {
    /// Passphrase of the root key file.
    pub root_passphrase: Passphrase,
    /// Where the online keys go. `None`: encrypted files under a generated passphrase, written
    /// to `online-passphrase`.
    pub online: Option<OnlineKeyBackend>,
    /// argon2id cost for the key files.
    pub kdf: KdfParams,
    /// Names and lifetimes.
    pub hierarchy: HierarchyPolicy,
    /// Name of the first operator certificate.
    pub operator: DeviceId,
}

/// How a written file must be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handling {
    /// Public material: distribute freely.
    Public,
    /// Keep offline (the root key).
    Offline,
    /// Secret the running server needs (online keys and their passphrase).
    OnlineSecret,
    /// Secret to hand to an operator and then delete from the server.
    OperatorSecret,
    /// Internal bookkeeping, no secrets.
    State,
}

/// One file written by a CA operation.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// Where.
    pub path: PathBuf,
    /// What it is.
    pub what: String,
    /// How to treat it.
    pub handling: Handling,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyLocation {
    File { path: String },
    Pkcs11(Pkcs11KeyRef),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct IntermediateRecord {
    generation: u32,
    key: KeyLocation,
    #[serde(with = "time::serde::rfc3339::option")]
    retired_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    trusted_until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CaState {
    version: u32,
    organization: String,
    intermediates: Vec<IntermediateRecord>,
    factory: KeyLocation,
    revoked_cas: Vec<RevokedEntry>,
}

/// The CA files of one data directory.
#[derive(Debug, Clone)]
pub struct CaDirectory {
    dir: PathBuf,
}

/// The CAs a running server holds: the root certificate (no key), every intermediate still
/// trusted (the newest issues; older ones only sign their CRLs until their overlap ends), and
/// the factory CA.
#[derive(Debug)]
pub struct OnlineCa {
    root: CaCertificate,
    intermediates: Vec<(IssuingCa, Option<OffsetDateTime>)>,
    factory: IssuingCa,
    revoked_cas: Vec<RevokedEntry>,
}

impl CaDirectory {
    /// The CA files under `<data_dir>/pki`.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Self {
            dir: data_dir.as_ref().join("pki"),
        }
    }

    /// The `pki` directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether a CA exists here.
    pub fn is_initialized(&self) -> bool {
        self.dir.join(STATE_FILE).exists()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

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
        // The state file goes last: its presence marks a complete CA.
        self.save_state(&state)?;
        written.push(WrittenFile {
            path: self.file(STATE_FILE),
            what: "CA state (generations, key locations; no secrets)".into(),
            handling: Handling::State,
        });
        Ok(written)
    }

    fn new_online_key(
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

    fn load_state(&self) -> Result<CaState, CaError> {
        let path = self.file(STATE_FILE);
        if !path.exists() {
            return Err(CaError::NotInitialized(
                self.dir.parent().unwrap_or(&self.dir).to_owned(),
            ));
        }
        let text = fs::read(&path).map_err(CaError::io("reading", &path))?;
        let state: CaState = serde_json::from_slice(&text).map_err(|e| CaError::BadState {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if state.version != STATE_VERSION || state.intermediates.is_empty() {
            return Err(CaError::BadState {
                path,
                reason: format!("unsupported version {} or no intermediates", state.version),
            });
        }
        Ok(state)
    }

    fn save_state(&self, state: &CaState) -> Result<(), CaError> {
        let text = serde_json::to_vec_pretty(state).map_err(|e| CaError::BadState {
            path: self.file(STATE_FILE),
            reason: e.to_string(),
        })?;
        write_file(&self.file(STATE_FILE), &text, Handling::State)
    }

    fn read_cert(&self, name: &str) -> Result<CaCertificate, CaError> {
        let path = self.file(name);
        let text = fs::read(&path).map_err(CaError::io("reading", &path))?;
        Ok(CaCertificate::from_pem(&text)?)
    }

    /// The root certificate.
    pub fn root_certificate(&self) -> Result<CaCertificate, CaError> {
        self.read_cert("root.crt.pem")
    }

    /// The factory CA certificate.
    pub fn factory_certificate(&self) -> Result<CaCertificate, CaError> {
        self.read_cert("factory.crt.pem")
    }

    /// Intermediates trusted at `now` (newest first), with their trust deadline.
    pub fn trusted_intermediates(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<TrustedIssuer>, CaError> {
        let state = self.load_state()?;
        let mut out = Vec::new();
        for rec in state.intermediates.iter().rev() {
            if rec.trusted_until.is_some_and(|t| now >= t) {
                continue;
            }
            let cert = self.read_cert(&format!("intermediate-{}.crt.pem", rec.generation))?;
            if state.revoked_cas.iter().any(|r| &r.serial == cert.serial())
                || now >= cert.not_after()
            {
                continue;
            }
            out.push(TrustedIssuer {
                certificate: cert,
                trusted_until: rec.trusted_until,
            });
        }
        Ok(out)
    }

    /// The chain file content: trusted intermediates (newest first) followed by the root.
    pub fn chain_pem(&self, now: OffsetDateTime) -> Result<String, CaError> {
        let mut out = String::new();
        for issuer in self.trusted_intermediates(now)? {
            out.push_str(&issuer.certificate.pem());
        }
        out.push_str(&self.root_certificate()?.pem());
        Ok(out)
    }

    /// The root-signed CRL (revoked intermediates and factory CAs), as last written.
    pub fn root_crl_pem(&self) -> Result<String, CaError> {
        let path = self.file("root.crl.pem");
        fs::read_to_string(&path).map_err(CaError::io("reading", &path))
    }

    /// Serials of revoked CA certificates (to seed the live revocation set).
    pub fn revoked_ca_entries(&self) -> Result<Vec<RevokedEntry>, CaError> {
        Ok(self.load_state()?.revoked_cas)
    }

    fn unlock_root(
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

    fn open_key(
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

    fn refresh_public_files(
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
        Ok(vec![
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

    /// Wraps every intermediate's signing key in `wrap` (tests and benchmarks: add a token's
    /// latency, count signatures). The wrapper must sign with the key it is given.
    pub fn map_intermediate_signers(
        self,
        wrap: impl Fn(Arc<dyn CaSigner>) -> Arc<dyn CaSigner>,
    ) -> Result<Self, crate::IssueError> {
        let mut intermediates = Vec::with_capacity(self.intermediates.len());
        for (ca, until) in self.intermediates {
            let signer = wrap(Arc::clone(ca.signer()));
            intermediates.push((
                IssuingCa::new(ca.certificate().clone(), ca.role(), signer)?,
                until,
            ));
        }
        Ok(Self {
            intermediates,
            ..self
        })
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

/// Writes a file atomically (temp file + rename); secrets get mode 0600.
fn write_file(path: &Path, data: &[u8], handling: Handling) -> Result<(), CaError> {
    let tmp = path.with_extension("tmp");
    // A stale temp file would keep its old permissions; start from nothing.
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let secret = matches!(
            handling,
            Handling::Offline | Handling::OnlineSecret | Handling::OperatorSecret
        );
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = handling;
    let mut f = options.open(&tmp).map_err(CaError::io("creating", &tmp))?;
    f.write_all(data).map_err(CaError::io("writing", &tmp))?;
    f.sync_all().map_err(CaError::io("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(CaError::io("renaming into", path))?;
    Ok(())
}
