//! The device's certificate signing request, signed inside its secure element.

use std::sync::Arc;

use ironroot_element::{DeviceSigner, RcgenKey};
use rcgen::{CertificateParams, DistinguishedName, DnType};

use crate::DeviceError;

/// A PKCS#10 CSR (DER) with the device id as common name, signed by `key` in its element.
pub fn csr(key: &Arc<dyn DeviceSigner>, device_id: &str) -> Result<Vec<u8>, DeviceError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, device_id);
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&RcgenKey(key.clone()))
        .map_err(|e| DeviceError::Key(e.to_string()))?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironroot_element::{SecureElement, SoftwareElement};

    #[test]
    fn csr_names_the_device_and_carries_the_element_key() {
        let el = SoftwareElement::ephemeral().unwrap();
        let key = el.generate("identity").unwrap();
        let der = csr(&key, "sensor-1").unwrap();
        assert!(der.windows(8).any(|w| w == b"sensor-1"));
        assert!(der.windows(65).any(|w| w == key.public_key()));
    }
}
