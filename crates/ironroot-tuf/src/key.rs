//! Public keys as TUF metadata holds them (securesystemslib `SSlibKey`): `ed25519` with the
//! 32-byte point in hex, `ecdsa` / `ecdsa-sha2-nistp256` with a PEM SubjectPublicKeyInfo, and
//! key ids as the SHA-256 hex of the canonical key object.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::TufError;
use crate::canonical::encode_canonical;
use crate::util::{hex, sha256_hex, unhex};

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point (65 bytes follow).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The verifying part of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Public {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// A key type or scheme this client does not verify (RSA, ...): never counts.
    Unsupported,
}

/// A public key of a role, with the JSON object it came from (key ids hash that object).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    public: Public,
    object: Value,
}

impl Key {
    /// Parses a key object `{"keytype", "scheme", "keyval": {"public"}}`. Key types and schemes
    /// this client does not support parse but never verify; a malformed supported key is refused.
    pub fn from_json(keyid: &str, v: &Value) -> Result<Self, TufError> {
        let bad = |reason| TufError::BadKey {
            keyid: keyid.to_string(),
            reason,
        };
        let field = |name| {
            v.get(name)
                .and_then(Value::as_str)
                .ok_or(bad("missing keytype/scheme"))
        };
        let (keytype, scheme) = (field("keytype")?, field("scheme")?);
        let public = v
            .get("keyval")
            .and_then(|kv| kv.get("public"))
            .and_then(Value::as_str)
            .ok_or(bad("missing keyval.public"))?;
        let public = match (keytype, scheme) {
            ("ed25519", "ed25519") => {
                let bytes: [u8; 32] = unhex(public)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(bad("ed25519 public key is not 32 bytes of hex"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| bad("not an Ed25519 point"))?;
                if key.is_weak() {
                    return Err(bad("weak (small-order) Ed25519 key"));
                }
                Public::Ed25519(key)
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                let point = p256_point_from_pem(public).ok_or(bad("not a P-256 PEM public key"))?;
                Public::EcdsaP256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| bad("not a P-256 point"))?,
                )
            }
            _ => Public::Unsupported,
        };
        Ok(Self {
            public,
            object: v.clone(),
        })
    }

    /// An Ed25519 key (keytype and scheme `ed25519`) from its 32-byte point.
    pub fn ed25519(point: &[u8; 32]) -> Result<Self, TufError> {
        let object =
            json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex(point)}});
        Self::from_json("(new)", &object)
    }

    /// An ECDSA P-256 key (keytype `ecdsa`, scheme `ecdsa-sha2-nistp256`) from its SEC1 point.
    pub fn ecdsa_p256(sec1: &[u8]) -> Result<Self, TufError> {
        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1).map_err(|_| TufError::BadKey {
                keyid: "(new)".into(),
                reason: "not a P-256 point",
            })?;
        let point = key.to_sec1_point(false);
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(point.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(core::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        let object =
            json!({"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": pem}});
        Self::from_json("(new)", &object)
    }

    /// The key object as metadata holds it.
    pub fn to_json(&self) -> &Value {
        &self.object
    }

    /// The key id: SHA-256 hex of the canonical key object.
    pub fn key_id(&self) -> String {
        // A key object came from JSON, so it has no floats unless an attacker put them there;
        // such a key never matches an id computed by a signer.
        encode_canonical(&self.object)
            .map(|c| sha256_hex(&c))
            .unwrap_or_default()
    }

    /// The public key bytes, the same for the same key under any key id (so one key listed
    /// twice never counts twice towards a threshold). `None` for unsupported keys.
    pub fn identity(&self) -> Option<Vec<u8>> {
        match &self.public {
            Public::Ed25519(k) => Some(k.as_bytes().to_vec()),
            Public::EcdsaP256(k) => Some(k.to_sec1_point(false).as_bytes().to_vec()),
            Public::Unsupported => None,
        }
    }

    /// Whether `sig` is this key's signature over `message` (Ed25519 strict verification;
    /// ECDSA P-256 over SHA-256 with a DER signature).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.public {
            Public::Ed25519(k) => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                    return false;
                };
                k.verify_strict(message, &sig).is_ok()
            }
            Public::EcdsaP256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                let Ok(sig) = p256::ecdsa::DerSignature::from_bytes(sig) else {
                    return false;
                };
                k.verify(message, &sig).is_ok()
            }
            Public::Unsupported => false,
        }
    }
}

/// Parses the `keys` object of root or delegations.
pub(crate) fn parse_keys(role: &str, v: &Value) -> Result<Vec<(String, Key)>, TufError> {
    let map: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| TufError::malformed(role, "keys is not an object"))?;
    map.iter()
        .map(|(id, k)| Ok((id.clone(), Key::from_json(id, k)?)))
        .collect()
}

fn p256_point_from_pem(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let point = der.strip_prefix(&P256_SPKI_PREFIX[..])?;
    (point.len() == 65 && point[0] == 4).then(|| point.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_key_object_and_id() {
        let k = Key::ed25519(&[
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ])
        .unwrap();
        let canon = encode_canonical(k.to_json()).unwrap();
        assert_eq!(
            core::str::from_utf8(&canon).unwrap(),
            r#"{"keytype":"ed25519","keyval":{"public":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"},"scheme":"ed25519"}"#
        );
        assert_eq!(k.key_id(), sha256_hex(&canon));
    }

    #[test]
    fn malformed_supported_keys_are_refused_unknown_types_never_verify() {
        let bad = json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "00"}});
        assert!(matches!(
            Key::from_json("x", &bad),
            Err(TufError::BadKey { .. })
        ));
        let rsa =
            json!({"keytype": "rsa", "scheme": "rsassa-pss-sha256", "keyval": {"public": "x"}});
        let k = Key::from_json("x", &rsa).unwrap();
        assert!(!k.verify(b"m", b"s"));
        assert_eq!(k.identity(), None);
    }
}
