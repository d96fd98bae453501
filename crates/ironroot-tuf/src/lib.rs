//! TUF 1.0 metadata: canonical JSON, keys, threshold signatures and the client update
//! workflow, usable without std (`alloc` only), plus repository tooling with `std`.
//!
//! ```text
//!  trusted root.json ──► Updater::refresh(&mut Transport)
//!      N+1.root.json … (old threshold AND new threshold, version N+1, bounded count)
//!      timestamp.json  (threshold, no rollback of itself or of the snapshot version, expiry)
//!      [N.]snapshot.json (version/length/hashes from timestamp, no targets rollback, expiry)
//!      [N.]targets.json  (version/length/hashes from snapshot, expiry)
//!  Updater::target_info ── delegations, depth first (terminating, path patterns)
//!  Updater::download_target ── at most the signed length, then length + hashes
//!  every trusted file persisted through Store under root.json, timestamp.json, ...
//! ```
//!
//! The principal type is [`Updater`]; [`Transport`] (the untrusted mirror) and [`Store`]
//! (trusted metadata between runs) are the two traits a device or CLI implements. Every
//! refusal is a [`TufError`]. Signatures are over [`encode_canonical`], byte-identical to
//! securesystemslib's. With `std`: [`repo::Repository`] writes repositories, [`Signer`]s
//! sign with key files (or PKCS#11 with the `pkcs11` feature), [`DirStore`] persists
//! atomically.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod canonical;
mod client;
mod error;
mod key;
mod metadata;
mod util;
mod verify;

#[cfg(feature = "std")]
pub mod repo;
#[cfg(feature = "std")]
mod signer;
#[cfg(feature = "std")]
mod store;

pub use canonical::encode_canonical;
pub use client::{Config, FetchError, Store, Transport, Updater, verify_trusted_root};
pub use error::TufError;
pub use key::Key;
pub use metadata::{
    Common, DelegatedRole, Delegations, Envelope, MetaFile, RoleKeys, Root, Snapshot, TargetFile,
    Targets, Timestamp, path_matches,
};
pub use util::{digest_hex, format_expires, parse_expires, quote_file_name, sha256_hex};
pub use verify::{check_length_and_hashes, verify_threshold};

#[cfg(feature = "pkcs11")]
pub use signer::Pkcs11Signer;
#[cfg(feature = "std")]
pub use signer::{KeyFileSigner, Signer, key_from_file, tuf_key};
#[cfg(feature = "std")]
pub use store::DirStore;

/// Entry points for the cargo-fuzz targets in `/fuzz`. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses any bytes as every role and canonicalizes them: a typed result, never a panic;
    /// the canonical encoding is deterministic.
    pub fn metadata(data: &[u8]) {
        if let Ok(env) = crate::Envelope::parse("fuzz", data) {
            assert_eq!(
                crate::encode_canonical(&env.signed).ok(),
                Some(env.canonical.clone())
            );
            let _ = crate::Root::from_signed(&env.signed);
            let _ = crate::Timestamp::from_signed(&env.signed);
            let _ = crate::Snapshot::from_signed(&env.signed);
            let _ = crate::Targets::from_signed("fuzz", &env.signed);
        }
        let _ = crate::verify_trusted_root(data);
        workflow(data);
    }

    /// The whole client workflow on untrusted bytes: the input up to the first 0xff byte is
    /// the trusted root, the rest is what the mirror serves for every file.
    fn workflow(data: &[u8]) {
        use alloc::collections::BTreeMap;
        use alloc::vec::Vec;
        struct Mem(BTreeMap<alloc::string::String, Vec<u8>>);
        impl crate::Store for Mem {
            fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, crate::TufError> {
                Ok(self.0.get(name).cloned())
            }
            fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), crate::TufError> {
                self.0.insert(name.into(), bytes.to_vec());
                Ok(())
            }
            fn remove(&mut self, name: &str) -> Result<(), crate::TufError> {
                self.0.remove(name);
                Ok(())
            }
        }
        struct Serve<'a>(&'a [u8]);
        impl crate::Transport for Serve<'_> {
            fn fetch(&mut self, _: &str, max: u64) -> Result<Option<Vec<u8>>, crate::FetchError> {
                if self.0.len() as u64 > max {
                    return Err(crate::FetchError::TooLarge);
                }
                Ok(Some(self.0.to_vec()))
            }
        }
        let split = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
        let (root, rest) = data.split_at(split);
        let store = Mem([("root.json".into(), root.to_vec())].into());
        let config = crate::Config {
            max_root_rotations: 4,
            ..crate::Config::default()
        };
        if let Ok(mut u) = crate::Updater::new(store, 0, config) {
            let mut t = Serve(rest.get(1..).unwrap_or_default());
            if u.refresh(&mut t).is_ok() {
                let _ = u.target_info(&mut t, "fw.bin");
            }
        }
    }
}
