//! Benchmark PKI (generated at run time) and the Mosquitto configuration that uses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironroot_pki::{
    CaRole, CaSigner, DeviceId, HierarchyPolicy, IssuancePolicy, IssuingCa, Serial,
    ServerName as PkiServerName, SoftwareKey, SubjectKey, create_root, intermediate_common_name,
    sign_subordinate,
};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use time::OffsetDateTime;

/// An ironroot-pki hierarchy (root → intermediate); device certificates carry the CN and the
/// `urn:ironroot:device:` URI, as in production.
pub struct Pki {
    pub dir: PathBuf,
    intermediate: IssuingCa,
    roots: Arc<RootCertStore>,
}

impl Pki {
    pub fn create(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let now = OffsetDateTime::now_utc();
        let policy = HierarchyPolicy::default();
        let root = create_root(Arc::new(SoftwareKey::generate().unwrap()), &policy, now).unwrap();
        let ikey = SoftwareKey::generate().unwrap();
        let icert = sign_subordinate(
            &root,
            CaRole::Intermediate,
            &intermediate_common_name(1),
            &ikey,
            &policy.organization,
            policy.intermediate_validity,
            now,
        )
        .unwrap();
        let intermediate = IssuingCa::new(icert, CaRole::Intermediate, Arc::new(ikey)).unwrap();
        let root_pem = root.certificate().pem();
        let int_pem = intermediate.certificate().pem();
        std::fs::write(dir.join("ca.pem"), &root_pem).unwrap();
        std::fs::write(dir.join("intermediate.pem"), &int_pem).unwrap();
        // OpenSSL (Mosquitto) builds client chains from its CA file: root and intermediate.
        std::fs::write(dir.join("ca-bundle.pem"), format!("{root_pem}{int_pem}")).unwrap();
        let skey = SoftwareKey::generate().unwrap();
        let server = intermediate
            .issue_server(
                &SubjectKey::p256(skey.public_key()).unwrap(),
                &[
                    PkiServerName::parse("localhost").unwrap(),
                    PkiServerName::parse("127.0.0.1").unwrap(),
                ],
                &IssuancePolicy::default(),
                now,
            )
            .unwrap();
        std::fs::write(dir.join("server.pem"), format!("{}{int_pem}", server.pem())).unwrap();
        std::fs::write(
            dir.join("server.key"),
            skey.to_pkcs8_pem().unwrap().as_bytes(),
        )
        .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(root.certificate().der().clone()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            intermediate,
            roots: Arc::new(roots),
        }
    }

    /// A device certificate for `id` (from a CSR): (DER certificate, PKCS#8 key, serial).
    pub fn issue(&self, id: &str) -> (Vec<u8>, Vec<u8>, Serial) {
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
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        (
            cert.der().to_vec(),
            key.serialize_der(),
            cert.serial().clone(),
        )
    }

    /// A TLS client configuration with its own certificate; no session resumption, so every
    /// connection pays a full mutual-TLS handshake on both brokers.
    pub fn client(&self, id: &str) -> Arc<ClientConfig> {
        self.client_with_serial(id).0
    }

    /// As [`Pki::client`], also returning the certificate serial.
    pub fn client_with_serial(&self, id: &str) -> (Arc<ClientConfig>, Serial) {
        let (cert, key, serial) = self.issue(id);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap();
        cfg.resumption = Resumption::disabled();
        (Arc::new(cfg), serial)
    }
}

pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Mosquitto 2 with the same certificates: client certificate required, CN as identity, and
/// an ACL pattern file granting exactly what the ironroot template policy grants. With
/// `shipped_defaults`, Mosquitto's own defaults for queues, in-flight window and Nagle (the
/// fleet-shaped benchmark); without, the deep queues the throughput runs use.
pub fn mosquitto_config(pki: &Pki, port: u16, shipped_defaults: bool) -> PathBuf {
    let acl = pki.dir.join("mosquitto.acl");
    std::fs::write(
        &acl,
        "pattern write devices/%u/telemetry\n\
         pattern write devices/%u/status\n\
         pattern read devices/%u/commands\n\
         user backend\n\
         topic read devices/+/telemetry\n\
         topic read devices/+/status\n\
         topic write devices/+/commands\n"
            .to_string()
            + &[
                "backend-0",
                "backend-1",
                "backend-2",
                "backend-3",
                "backend-9",
            ]
            .iter()
            .map(|u| {
                format!(
                    "user {u}\ntopic read devices/+/telemetry\ntopic read devices/+/status\n\
                         topic read $share/ingest/devices/+/telemetry\n"
                )
            })
            .collect::<String>(),
    )
    .unwrap();
    let tuning = if shipped_defaults {
        String::new()
    } else {
        "max_queued_messages 100000\nmax_inflight_messages 16\nset_tcp_nodelay true\n".into()
    };
    let conf = pki.dir.join("mosquitto.conf");
    let d = pki.dir.display();
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\n\
             listener {port} 127.0.0.1\n\
             cafile {d}/ca-bundle.pem\n\
             certfile {d}/server.pem\n\
             keyfile {d}/server.key\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             acl_file {}\n\
             allow_anonymous false\n\
             max_connections -1\n\
             {tuning}\
             persistence false\n\
             log_type error\n\
             log_dest stderr\n",
            acl.display()
        ),
    )
    .unwrap();
    conf
}
