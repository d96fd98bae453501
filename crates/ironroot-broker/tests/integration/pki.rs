//! Throwaway test PKI built with ironroot-pki at test time: root → intermediate (issuing
//! devices and the broker's server certificate), device certificates from rcgen-made CSRs
//! (CN + `urn:ironroot:device:` URI), and the broker's verifier: ironroot-pki's
//! `RevocationCheckingVerifier` with its live `RevocationSet`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ironroot_pki::{
    CaRole, CaSigner, DeviceId, HierarchyPolicy, IssuancePolicy, IssuingCa,
    RevocationCheckingVerifier, RevocationSet, Serial, ServerName, SoftwareKey, SubjectKey,
    TrustedIssuer, create_root, intermediate_common_name, sign_subordinate,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ironroot-broker-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Files of one client certificate.
#[derive(Clone, Debug)]
pub struct ClientFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial: Serial,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
}

impl ClientFiles {
    /// The serial as the broker's API takes it.
    pub fn broker_serial(&self) -> Serial {
        self.serial.clone()
    }
}

/// A CA hierarchy writing PEM files into a temporary directory.
pub struct TestPki {
    pub dir: TempDir,
    /// The root (trust anchor given to clients and the verifier).
    pub ca_der: CertificateDer<'static>,
    intermediate: IssuingCa,
    root_cert: ironroot_pki::CaCertificate,
    /// The live revoked set of the broker's verifier.
    pub revoked: Arc<RevocationSet>,
}

impl TestPki {
    pub fn new(name: &str) -> TestPki {
        let dir = TempDir::new(name);
        // Backdated, so that certificates that expired already can be issued too.
        let then = OffsetDateTime::now_utc() - Duration::days(400);
        let policy = HierarchyPolicy::default();
        let root = create_root(Arc::new(SoftwareKey::generate().unwrap()), &policy, then).unwrap();
        let ikey = SoftwareKey::generate().unwrap();
        let icert = sign_subordinate(
            &root,
            CaRole::Intermediate,
            &intermediate_common_name(1),
            &ikey,
            &policy.organization,
            policy.intermediate_validity,
            then,
        )
        .unwrap();
        let intermediate = IssuingCa::new(icert, CaRole::Intermediate, Arc::new(ikey)).unwrap();
        std::fs::write(dir.path().join("ca.pem"), root.certificate().pem()).unwrap();
        std::fs::write(
            dir.path().join("intermediate.pem"),
            intermediate.certificate().pem(),
        )
        .unwrap();
        let skey = SoftwareKey::generate().unwrap();
        let server = intermediate
            .issue_server(
                &SubjectKey::p256(skey.public_key()).unwrap(),
                &[
                    ServerName::parse("localhost").unwrap(),
                    ServerName::parse("127.0.0.1").unwrap(),
                ],
                &IssuancePolicy::default(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        std::fs::write(
            dir.path().join("server.pem"),
            format!("{}{}", server.pem(), intermediate.certificate().pem()),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("server.key"),
            skey.to_pkcs8_pem().unwrap().as_bytes(),
        )
        .unwrap();
        TestPki {
            ca_der: root.certificate().der().clone(),
            root_cert: root.certificate().clone(),
            dir,
            intermediate,
            revoked: Arc::new(RevocationSet::new()),
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a device certificate for `id` from a CSR, as of `now`.
    fn device_at(&self, id: &str, file: &str, now: OffsetDateTime) -> ClientFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, id);
        let csr = params.serialize_request(&key).unwrap();
        let cert = self
            .intermediate
            .issue_device_from_csr(
                csr.der(),
                &DeviceId::parse(id).unwrap(),
                &IssuancePolicy::default(),
                now,
            )
            .unwrap();
        let cert_path = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        ClientFiles {
            cert: cert_path,
            key: key_path,
            serial: cert.serial().clone(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A valid device certificate for `id`.
    pub fn client(&self, id: &str) -> ClientFiles {
        self.device_at(id, id, OffsetDateTime::now_utc())
    }

    /// A device certificate that expired ten days ago.
    pub fn expired_client(&self, id: &str) -> ClientFiles {
        self.device_at(
            id,
            &format!("{id}-expired"),
            OffsetDateTime::now_utc() - Duration::days(100),
        )
    }

    /// An operator certificate (valid chain, but not a device identity).
    pub fn operator(&self, name: &str) -> ClientFiles {
        let key = SoftwareKey::generate().unwrap();
        let cert = self
            .intermediate
            .issue_operator(
                &SubjectKey::p256(key.public_key()).unwrap(),
                &DeviceId::parse(name).unwrap(),
                &IssuancePolicy::default(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        let cert_path = self.dir.path().join(format!("{name}-operator.pem"));
        let key_path = self.dir.path().join(format!("{name}-operator.key"));
        let key_pem = key.to_pkcs8_pem().unwrap().to_string();
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, &key_pem).unwrap();
        ClientFiles {
            cert: cert_path,
            key: key_path,
            serial: cert.serial().clone(),
            cert_der: cert.der().to_vec(),
            key_pem,
        }
    }

    /// Revokes a certificate in the verifier's live set (new handshakes fail).
    pub fn revoke(&self, c: &ClientFiles) {
        self.revoked.revoke(c.serial.clone());
    }

    /// The broker's server configuration: our chain and key, ironroot-pki's verifier.
    pub fn server_config(&self) -> rustls::ServerConfig {
        let p = self.tls_parts();
        ironroot_broker::tls::server_config(p.chain, p.key, p.verifier).unwrap()
    }

    /// The parts of the server configuration, for `BrokerBuilder::tls_parts`.
    pub fn tls_parts(&self) -> ironroot_broker::tls::TlsParts {
        use rustls::pki_types::pem::PemObject;
        let verifier = RevocationCheckingVerifier::new(
            std::slice::from_ref(&self.root_cert),
            vec![TrustedIssuer {
                certificate: self.intermediate.certificate().clone(),
                trusted_until: None,
            }],
            self.revoked.clone(),
        )
        .unwrap();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.dir.path().join("server.pem"))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
        let key = PrivateKeyDer::from_pem_file(self.dir.path().join("server.key")).unwrap();
        ironroot_broker::tls::TlsParts {
            chain,
            key,
            verifier,
        }
    }
}

pub fn key_der(pem: &str) -> PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap())
}
