//! Benchmarks of the CA: certificates issued per second from CSRs, and mutual-TLS handshakes
//! per second with 0, 10k and 100k revoked serials.
//!
//! Anchors measured in the same run: `openssl speed ecdsap256` (the raw primitive), Python
//! `cryptography` and the `openssl x509 -req` CLI doing the same CSR-to-certificate step, and
//! rustls' own webpki verifier fed a CRL of the same size (the design we rejected).
//!
//! Run: `cargo bench -p ironroot-pki --bench pki`

use std::process::Command;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput};
use ironroot_pki::{
    CaRole, CaSigner, DeviceId, HierarchyPolicy, IssuancePolicy, IssuingCa,
    RevocationCheckingVerifier, RevocationReason, RevocationSet, RevokedEntry, Serial, ServerName,
    SoftwareKey, SubjectKey, TrustedIssuer, create_root, sign_subordinate,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use time::{Duration, OffsetDateTime};

struct Pki {
    root: IssuingCa,
    intermediate: IssuingCa,
    intermediate_key: Arc<SoftwareKey>,
}

fn pki() -> Pki {
    let now = OffsetDateTime::now_utc();
    let root = create_root(
        Arc::new(SoftwareKey::generate().unwrap()),
        &HierarchyPolicy::default(),
        now,
    )
    .unwrap();
    let key = Arc::new(SoftwareKey::generate().unwrap());
    let cert = sign_subordinate(
        &root,
        CaRole::Intermediate,
        "bench intermediate",
        key.as_ref(),
        "bench",
        Duration::days(365),
        now,
    )
    .unwrap();
    let intermediate = IssuingCa::new(cert, CaRole::Intermediate, key.clone()).unwrap();
    Pki {
        root,
        intermediate,
        intermediate_key: key,
    }
}

fn csr_der(cn: &str) -> (Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    (params.serialize_request(&key).unwrap().der().to_vec(), key)
}

fn issuance(c: &mut Criterion, pki: &Pki) {
    let (csr, _) = csr_der("bench-device");
    let device = DeviceId::parse("bench-device").unwrap();
    let policy = IssuancePolicy::default();
    let mut group = c.benchmark_group("issuance");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issue_device_from_csr", |b| {
        b.iter(|| {
            pki.intermediate
                .issue_device_from_csr(&csr, &device, &policy, OffsetDateTime::now_utc())
                .unwrap()
        })
    });
    group.bench_function("verify_csr_only", |b| {
        b.iter(|| ironroot_pki::verify_csr(&csr, &policy.csr).unwrap())
    });
    group.bench_function("ecdsa_p256_sign_only", |b| {
        b.iter(|| pki.intermediate_key.sign(b"bench message").unwrap())
    });
    group.finish();
}

fn key_der(pem_text: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        pem::parse(pem_text).unwrap().into_contents(),
    ))
}

fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) {
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut c = ClientConnection::new(client.clone(), "localhost".try_into().unwrap()).unwrap();
    let mut buf = Vec::with_capacity(8192);
    while s.is_handshaking() || c.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().unwrap();
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().unwrap();
    }
}

fn handshakes(c: &mut Criterion, pki: &Pki) {
    let now = OffsetDateTime::now_utc();
    let policy = IssuancePolicy::default();
    let provider = RevocationCheckingVerifier::provider();
    let server_key = SoftwareKey::generate().unwrap();
    let server_cert = pki
        .intermediate
        .issue_server(
            &SubjectKey::p256(server_key.public_key()).unwrap(),
            &[ServerName::parse("localhost").unwrap()],
            &policy,
            now,
        )
        .unwrap();
    let (csr, device_key) = csr_der("bench-device");
    let device_cert = pki
        .intermediate
        .issue_device_from_csr(
            &csr,
            &DeviceId::parse("bench-device").unwrap(),
            &policy,
            now,
        )
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(pki.root.certificate().der().clone()).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(
            vec![
                device_cert.der().clone(),
                pki.intermediate.certificate().der().clone(),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(device_key.serialize_der())),
        )
        .unwrap();
    // Every handshake must be a full one that verifies the client certificate: no resumption.
    client.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(client);
    let server_config = |verifier: Arc<dyn ClientCertVerifier>| {
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![
                    server_cert.der().clone(),
                    pki.intermediate.certificate().der().clone(),
                ],
                key_der(&server_key.to_pkcs8_pem().unwrap()),
            )
            .unwrap();
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Arc::new(config)
    };

    let now_unix = rustls::pki_types::UnixTime::now();
    let leaf = device_cert.der().clone();
    let inter = [pki.intermediate.certificate().der().clone()];
    struct Setup {
        n: usize,
        ours: Arc<RevocationCheckingVerifier>,
        webpki: Arc<dyn ClientCertVerifier>,
    }
    let mut setups = Vec::new();
    for n in [0usize, 10_000, 100_000] {
        let serials: Vec<Serial> = (0..n).map(|_| Serial::random().unwrap()).collect();
        let ours = RevocationCheckingVerifier::new(
            &[pki.root.certificate().clone()],
            vec![TrustedIssuer {
                certificate: pki.intermediate.certificate().clone(),
                trusted_until: None,
            }],
            Arc::new(RevocationSet::from_serials(serials.iter().cloned())),
        )
        .unwrap();
        // Anchor: webpki checking a CRL with the same entries in the handshake.
        let entries: Vec<RevokedEntry> = serials
            .iter()
            .map(|s| RevokedEntry {
                serial: s.clone(),
                revoked_at: now,
                reason: RevocationReason::Unspecified,
            })
            .collect();
        let crl = pki
            .intermediate
            .sign_crl(&entries, now, Duration::hours(24))
            .unwrap();
        let webpki =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
                .with_crls([crl.der().clone()])
                .only_check_end_entity_revocation()
                .build()
                .unwrap();
        // Both must accept the (unrevoked) device before we time them.
        ours.verify_client_cert(&leaf, &inter, now_unix).unwrap();
        webpki.verify_client_cert(&leaf, &inter, now_unix).unwrap();
        setups.push(Setup { n, ours, webpki });
    }

    // The verifier alone, without the rest of the handshake (less noise).
    let mut group = c.benchmark_group("client_cert_verify");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    for s in &setups {
        group.bench_with_input(BenchmarkId::new("ironroot_live_set", s.n), &s.n, |b, _| {
            b.iter(|| s.ours.verify_client_cert(&leaf, &inter, now_unix).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("webpki_crl", s.n), &s.n, |b, _| {
            b.iter(|| {
                s.webpki
                    .verify_client_cert(&leaf, &inter, now_unix)
                    .unwrap()
            })
        });
    }
    group.finish();

    // Full TLS 1.3 mutual-auth handshakes in memory (both sides' crypto on this core).
    let mut group = c.benchmark_group("mtls_handshake");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    for s in &setups {
        let ours = server_config(s.ours.clone());
        handshake(&ours, &client);
        group.bench_with_input(BenchmarkId::new("ironroot_live_set", s.n), &s.n, |b, _| {
            b.iter(|| handshake(&ours, &client))
        });
        let anchor = server_config(s.webpki.clone());
        handshake(&anchor, &client);
        group.bench_with_input(BenchmarkId::new("webpki_crl", s.n), &s.n, |b, _| {
            b.iter(|| handshake(&anchor, &client))
        });
    }
    group.finish();
}

/// Runs the external anchors once and prints their rates.
fn anchors(pki: &Pki) {
    let tmp = tempfile::tempdir().unwrap();
    let (csr, _) = csr_der("bench-device");
    let csr_pem = tmp.path().join("csr.pem");
    std::fs::write(
        &csr_pem,
        pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", csr)),
    )
    .unwrap();
    let ca_pem = tmp.path().join("ca.pem");
    std::fs::write(&ca_pem, pki.intermediate.certificate().pem()).unwrap();
    let ca_key = tmp.path().join("ca.key");
    std::fs::write(
        &ca_key,
        pki.intermediate_key.to_pkcs8_pem().unwrap().as_bytes(),
    )
    .unwrap();
    let openssl = ironroot_testkit::tool("openssl");

    let speed = Command::new(&openssl)
        .args(["speed", "-seconds", "3", "ecdsap256"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&speed.stdout);
    if let Some(line) = text.lines().rev().find(|l| l.contains("nistp256")) {
        println!(
            "anchor openssl speed ecdsap256 (sign/s, verify/s): {}",
            line.split_whitespace()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }

    let python = ironroot_testkit::python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/anchor_issue.py");
    for _ in 0..3 {
        let out = Command::new(&python)
            .arg(script)
            .args([&csr_pem, &ca_pem, &ca_key])
            .arg("3000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "anchor python cryptography issue from CSR: {} certs/s",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }

    let ext = tmp.path().join("ext.cnf");
    std::fs::write(&ext, "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:urn:ironroot:device:bench-device\nauthorityKeyIdentifier=keyid\n").unwrap();
    let n = 200;
    let start = std::time::Instant::now();
    for i in 0..n {
        let st = Command::new(&openssl)
            .args(["x509", "-req", "-days", "90", "-sha256", "-in"])
            .arg(&csr_pem)
            .arg("-CA")
            .arg(&ca_pem)
            .arg("-CAkey")
            .arg(&ca_key)
            .args(["-set_serial", &format!("{}", i + 1), "-extfile"])
            .arg(&ext)
            .args(["-out", "/dev/null"])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
    println!(
        "anchor openssl x509 -req loop (one process per cert): {:.0} certs/s",
        n as f64 / start.elapsed().as_secs_f64()
    );
}

fn main() {
    let pki = pki();
    let mut c = Criterion::default().configure_from_args();
    if !std::env::args().any(|a| a == "--list")
        && std::env::var_os("IRONROOT_BENCH_SKIP_ANCHORS").is_none()
    {
        anchors(&pki);
    }
    issuance(&mut c, &pki);
    handshakes(&mut c, &pki);
    c.final_summary();
}
