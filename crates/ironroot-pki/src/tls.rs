//! The one hardened rustls server configuration of ironroot: the HTTPS listener
//! (ironroot-server) and the MQTT listener (ironroot-broker) both build theirs here, so the
//! version and cipher policy exists once.
//!
//! Policy: TLS 1.3, and TLS 1.2 with ECDHE key exchange and an AEAD cipher only, on the
//! aws-lc-rs provider. The suite list is filtered explicitly (not left to the provider's
//! defaults) so that a future provider adding a weaker suite does not widen the policy. rustls
//! implements no CBC, RC4 or RSA-key-transport suite at all, and nothing below TLS 1.2.
//! Session resumption is off (no session cache, no TLS 1.3 tickets): a resumed session would
//! skip the client-certificate check, and so the live revoked set.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CipherSuite, ServerConfig, SupportedCipherSuite};

/// The cipher suites the policy admits, in preference order (TLS 1.3 first).
pub const ALLOWED_SUITES: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The crypto provider of the policy: aws-lc-rs restricted to [`ALLOWED_SUITES`].
pub fn hardened_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = ALLOWED_SUITES
        .iter()
        .filter_map(|wanted| {
            provider
                .cipher_suites
                .iter()
                .find(|s| s.suite() == *wanted)
                .copied()
        })
        .collect::<Vec<SupportedCipherSuite>>();
    Arc::new(provider)
}

/// Builds a server configuration under the policy: `chain` (leaf first) and `key` identify
/// the server, `verifier` decides which client certificates are accepted (and whether one is
/// required), `alpn` lists the application protocols offered (may be empty).
pub fn hardened_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<dyn ClientCertVerifier>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(hardened_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_holds_exactly_the_allowed_suites() {
        let got: Vec<CipherSuite> = hardened_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(got, ALLOWED_SUITES);
        // Every TLS 1.2 suite admitted is ECDHE with an AEAD cipher.
        for s in &got {
            let name = format!("{s:?}");
            assert!(
                name.starts_with("TLS13_")
                    || (name.starts_with("TLS_ECDHE_")
                        && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"))),
                "{name}"
            );
        }
    }
}
