//! The device key: made on the device, never sent anywhere; only its CSR leaves.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::AgentError;

/// A P-256 device key. The PKCS#8 bytes are wiped when it is dropped.
pub struct DeviceKey {
    pair: KeyPair,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(P-256, private)")
    }
}

impl DeviceKey {
    /// Makes a new random P-256 key.
    pub fn generate() -> Result<Self, AgentError> {
        let pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| AgentError::Key(e.to_string()))?;
        Ok(Self { pair })
    }

    /// Reads a key from PKCS#8 PEM (as written by [`DeviceKey::to_pem`]).
    pub fn from_pem(pem: &str) -> Result<Self, AgentError> {
        let pair = KeyPair::from_pem(pem).map_err(|e| AgentError::BadInput {
            what: "device key",
            reason: e.to_string(),
        })?;
        Ok(Self { pair })
    }

    /// The key as PKCS#8 PEM, for the device's protected storage.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.pair.serialize_pem())
    }

    /// A PKCS#10 CSR (DER) with the device id as common name, signed by this key.
    pub fn csr(&self, device_id: &str) -> Result<Vec<u8>, AgentError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device_id);
        params.distinguished_name = dn;
        let csr = params
            .serialize_request(&self.pair)
            .map_err(|e| AgentError::Key(e.to_string()))?;
        Ok(csr.der().to_vec())
    }

    /// The key in the form rustls takes for client authentication.
    pub(crate) fn rustls_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pair.serialize_der()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_names_the_device_and_round_trips_through_pem() {
        let key = DeviceKey::generate().unwrap();
        let csr = key.csr("sensor-1").unwrap();
        // The CN is inside the DER as a UTF8String or PrintableString.
        assert!(csr.windows(8).any(|w| w == b"sensor-1"));
        let again = DeviceKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(again.to_pem().as_str(), key.to_pem().as_str());
        assert!(format!("{key:?}").contains("private"));
        assert!(!format!("{key:?}").contains("BEGIN"));
    }

    #[test]
    fn garbage_key_is_a_typed_error() {
        let err = DeviceKey::from_pem("not a key").unwrap_err();
        assert!(matches!(
            err,
            AgentError::BadInput {
                what: "device key",
                ..
            }
        ));
    }
}
