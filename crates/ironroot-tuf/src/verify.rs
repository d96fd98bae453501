//! Signature thresholds and the length/hash check of fetched files.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::ToString;
use alloc::vec::Vec;

use crate::TufError;
use crate::key::Key;
use crate::metadata::{Envelope, RoleKeys};
use crate::util::digest_hex;

/// Checks that `env` carries valid signatures over its canonical `signed` bytes from at
/// least `role_keys.threshold` distinct keys of the role. Signatures by keys outside the role,
/// a second signature under the same key id and the same key listed under two ids count once.
pub fn verify_threshold(
    role: &str,
    env: &Envelope,
    keys: &BTreeMap<alloc::string::String, Key>,
    role_keys: &RoleKeys,
) -> Result<(), TufError> {
    let mut signers: BTreeSet<Vec<u8>> = BTreeSet::new();
    for keyid in &role_keys.keyids {
        let Some(key) = keys.get(keyid) else {
            continue;
        };
        let Some(identity) = key.identity() else {
            continue;
        };
        if signers.contains(&identity) {
            continue;
        }
        let valid = env
            .signatures
            .iter()
            .filter(|(id, _)| id == keyid)
            .take(4)
            .any(|(_, sig)| key.verify(&env.canonical, sig));
        if valid {
            signers.insert(identity);
        }
    }
    let valid = signers.len() as u64;
    if valid < role_keys.threshold {
        return Err(TufError::Threshold {
            role: role.to_string(),
            valid,
            threshold: role_keys.threshold,
        });
    }
    Ok(())
}

/// Checks `data` against a signed length (exact) and signed hashes (every listed algorithm
/// must be supported and match).
pub fn check_length_and_hashes(
    name: &str,
    data: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<alloc::string::String, alloc::string::String>>,
) -> Result<(), TufError> {
    if let Some(expected) = length
        && data.len() as u64 != expected
    {
        return Err(TufError::LengthMismatch {
            name: name.to_string(),
            expected,
            got: data.len() as u64,
        });
    }
    for (algorithm, expected) in hashes.into_iter().flatten() {
        if digest_hex(algorithm, data).as_deref() != Some(expected.as_str()) {
            return Err(TufError::HashMismatch {
                name: name.to_string(),
                algorithm: algorithm.clone(),
            });
        }
    }
    Ok(())
}
