//! The software element: for Linux gateways without a TPM and for the fleet simulator.
//!
//! Keys are generated in process memory and stored only sealed: AES-256-GCM under a key derived
//! with HKDF-SHA256 from the device's hardware-unique key (HUK) and the key's label, with the
//! label as associated data. A sealed file copied to another device, renamed to another label
//! or edited does not open. Plaintext PKCS#8 exists only in wiped buffers while a key is loaded.
//! The HUK stands in for the fused per-device secret a real SoC offers (an eFuse block, a PUF);
//! on a gateway it is a 0600 file outside the data directory, ideally on a separate volume.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::agreement;
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SystemRandom, fill};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use parking_lot::Mutex;
use zeroize::Zeroizing;

use crate::error::check_label;
use crate::{DeviceSigner, ElementError, SecureElement};

const MAGIC: &[u8; 6] = b"IRSK1\0";
const SEAL_SALT: &[u8] = b"ironroot-element/seal/v1";
const COUNTER_NAME: &str = ".counter";
/// Shortest HUK accepted: 256 bits.
const HUK_MIN: usize = 32;

/// The device's hardware-unique key: the secret every sealed key is bound to. Wiped on drop;
/// its `Debug` shows nothing.
pub struct Huk(Zeroizing<Vec<u8>>);

impl fmt::Debug for Huk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Huk(secret)")
    }
}

impl Huk {
    /// A HUK from raw bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ElementError> {
        if bytes.len() < HUK_MIN {
            return Err(ElementError::Huk(format!(
                "{} bytes; at least {HUK_MIN} are needed",
                bytes.len()
            )));
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A fresh random HUK (simulated devices).
    pub fn random() -> Result<Self, ElementError> {
        let mut bytes = Zeroizing::new(vec![0u8; HUK_MIN]);
        fill(&mut bytes).map_err(|_| ElementError::Crypto("random HUK"))?;
        Ok(Self(bytes))
    }

    /// Reads the HUK file.
    pub fn load(path: &Path) -> Result<Self, ElementError> {
        let bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| ElementError::Huk(format!("{}: {e}", path.display())))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Creates a new random HUK file (0600), refusing to overwrite one: replacing a HUK makes
    /// every sealed key unreadable.
    pub fn create(path: &Path) -> Result<Self, ElementError> {
        if path.exists() {
            return Err(ElementError::Huk(format!(
                "{} already exists; refusing to replace a hardware-unique key",
                path.display()
            )));
        }
        let huk = Self::random()?;
        ironroot_fs::write_secret_atomically(path, &huk.0)
            .map_err(|e| ElementError::Huk(format!("{}: {e}", path.display())))?;
        Ok(huk)
    }

    fn derive(&self, info: &[u8]) -> Result<Zeroizing<[u8; 32]>, ElementError> {
        let prk = Salt::new(HKDF_SHA256, SEAL_SALT).extract(&self.0);
        let info = [info];
        let okm = prk
            .expand(&info, HKDF_SHA256)
            .map_err(|_| ElementError::Crypto("HKDF expand"))?;
        let mut out = Zeroizing::new([0u8; 32]);
        okm.fill(&mut out[..])
            .map_err(|_| ElementError::Crypto("HKDF fill"))?;
        Ok(out)
    }
}

/// Where the software element keeps its sealed blobs.
#[derive(Debug)]
pub enum KeyStorage {
    /// One `<label>.sealed` file per key in this directory (created 0700 if missing).
    Dir(PathBuf),
    /// In memory only: simulated devices, tests.
    Memory(Mutex<HashMap<String, Vec<u8>>>),
}

impl KeyStorage {
    /// Empty in-memory storage.
    pub fn memory() -> Self {
        Self::Memory(Mutex::new(HashMap::new()))
    }

    fn path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.sealed"))
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ElementError> {
        match self {
            Self::Dir(dir) => match std::fs::read(Self::path(dir, name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ElementError::Storage(e.to_string())),
            },
            Self::Memory(m) => Ok(m.lock().get(name).cloned()),
        }
    }

    fn put(&self, name: &str, blob: &[u8]) -> Result<(), ElementError> {
        match self {
            Self::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| ElementError::Storage(e.to_string()))?;
                ironroot_fs::write_secret_atomically(&Self::path(dir, name), blob)
                    .map_err(|e| ElementError::Storage(e.to_string()))
            }
            Self::Memory(m) => {
                m.lock().insert(name.to_owned(), blob.to_vec());
                Ok(())
            }
        }
    }

    fn remove(&self, name: &str) -> Result<bool, ElementError> {
        match self {
            Self::Dir(dir) => match std::fs::remove_file(Self::path(dir, name)) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(ElementError::Storage(e.to_string())),
            },
            Self::Memory(m) => Ok(m.lock().remove(name).is_some()),
        }
    }
}

/// The sealed software element. Operations on one element are serialized by an internal lock
/// (generate-if-absent and counter increments are atomic within the process).
pub struct SoftwareElement {
    huk: Huk,
    storage: KeyStorage,
    lock: Mutex<()>,
}

impl fmt::Debug for SoftwareElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SoftwareElement {
    /// An element over `storage`, bound to `huk`.
    pub fn new(huk: Huk, storage: KeyStorage) -> Self {
        Self {
            huk,
            storage,
            lock: Mutex::new(()),
        }
    }

    /// A throwaway in-memory element with a random HUK (one per simulated device).
    pub fn ephemeral() -> Result<Self, ElementError> {
        Ok(Self::new(Huk::random()?, KeyStorage::memory()))
    }

    fn aead(&self, name: &str) -> Result<LessSafeKey, ElementError> {
        let key = self.huk.derive(name.as_bytes())?;
        let unbound =
            UnboundKey::new(&AES_256_GCM, &key[..]).map_err(|_| ElementError::Crypto("AES key"))?;
        Ok(LessSafeKey::new(unbound))
    }

    fn seal(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>, ElementError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill(&mut nonce).map_err(|_| ElementError::Crypto("nonce"))?;
        let mut buf = plain.to_vec();
        let aad = [&MAGIC[..], name.as_bytes()].concat();
        let sealed = self.aead(name)?.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut buf,
        );
        let result = sealed.map(|()| [&MAGIC[..], &nonce, &buf].concat());
        zeroize::Zeroize::zeroize(&mut buf);
        result.map_err(|_| ElementError::Crypto("AES-GCM seal"))
    }

    fn unseal(&self, name: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, ElementError> {
        let bad = || ElementError::Unseal {
            label: name.to_owned(),
        };
        let rest = blob.strip_prefix(&MAGIC[..]).ok_or_else(bad)?;
        if rest.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let aad = [&MAGIC[..], name.as_bytes()].concat();
        let mut buf = Zeroizing::new(ct.to_vec());
        let len = self
            .aead(name)?
            .open_in_place(nonce, Aad::from(&aad), &mut buf)
            .map_err(|_| bad())?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    fn load_pkcs8(&self, label: &str) -> Result<Zeroizing<Vec<u8>>, ElementError> {
        let blob = self
            .storage
            .get(label)?
            .ok_or_else(|| ElementError::NoSuchKey(label.to_owned()))?;
        self.unseal(label, &blob)
    }

    fn signer_from(label: &str, pkcs8: &[u8]) -> Result<Arc<dyn DeviceSigner>, ElementError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
            .map_err(|_| ElementError::Unseal {
                label: label.to_owned(),
            })?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Arc::new(SoftwareSigner {
            label: label.to_owned(),
            pair,
            public,
        }))
    }

    fn read_counter(&self) -> Result<u64, ElementError> {
        match self.storage.get(COUNTER_NAME)? {
            None => Ok(0),
            Some(blob) => {
                let plain = self.unseal(COUNTER_NAME, &blob)?;
                let bytes: [u8; 8] = plain.as_slice().try_into().map_err(|_| ElementError::Unseal {
                    label: COUNTER_NAME.to_owned(),
                })?;
                Ok(u64::from_be_bytes(bytes))
            }
        }
    }
}

impl SecureElement for SoftwareElement {
    fn describe(&self) -> String {
        match &self.storage {
            KeyStorage::Dir(dir) => format!("software element (sealed keys in {})", dir.display()),
            KeyStorage::Memory(_) => "software element (in memory)".to_owned(),
        }
    }

    fn unique_id(&self) -> Result<String, ElementError> {
        let id = self.huk.derive(b"unique-id")?;
        Ok(id[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    fn generate(&self, label: &str) -> Result<Arc<dyn DeviceSigner>, ElementError> {
        check_label(label)?;
        let _guard = self.lock.lock();
        if self.storage.get(label)?.is_some() {
            return Err(ElementError::KeyExists(label.to_owned()));
        }
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| ElementError::Crypto("P-256 key generation"))?;
        let pkcs8 = Zeroizing::new(
            pair.to_pkcs8v1()
                .map_err(|_| ElementError::Crypto("PKCS#8 encoding"))?
                .as_ref()
                .to_vec(),
        );
        let blob = self.seal(label, &pkcs8)?;
        self.storage.put(label, &blob)?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Arc::new(SoftwareSigner {
            label: label.to_owned(),
            pair,
            public,
        }))
    }

    fn open(&self, label: &str) -> Result<Arc<dyn DeviceSigner>, ElementError> {
        check_label(label)?;
        let pkcs8 = self.load_pkcs8(label)?;
        Self::signer_from(label, &pkcs8)
    }

    fn destroy(&self, label: &str) -> Result<(), ElementError> {
        check_label(label)?;
        let _guard = self.lock.lock();
        if self.storage.remove(label)? {
            Ok(())
        } else {
            Err(ElementError::NoSuchKey(label.to_owned()))
        }
    }

    fn counter(&self) -> Result<u64, ElementError> {
        let _guard = self.lock.lock();
        self.read_counter()
    }

    fn increment_counter(&self) -> Result<u64, ElementError> {
        let _guard = self.lock.lock();
        let next = self
            .read_counter()?
            .checked_add(1)
            .ok_or(ElementError::Crypto("counter exhausted"))?;
        let blob = self.seal(COUNTER_NAME, &next.to_be_bytes())?;
        self.storage.put(COUNTER_NAME, &blob)?;
        Ok(next)
    }

    fn ecdh(&self, label: &str, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, ElementError> {
        check_label(label)?;
        let pkcs8 = self.load_pkcs8(label)?;
        let private = agreement::PrivateKey::from_private_key_der(&agreement::ECDH_P256, &pkcs8)
            .map_err(|_| ElementError::Unseal {
                label: label.to_owned(),
            })?;
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer);
        agreement::agree(&private, peer, ElementError::BadPeerKey, |secret| {
            Ok(Zeroizing::new(secret.to_vec()))
        })
    }
}

/// A loaded software key. The key pair lives in aws-lc memory for as long as it is loaded.
struct SoftwareSigner {
    label: String,
    pair: EcdsaKeyPair,
    public: Vec<u8>,
}

impl fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoftwareSigner({:?}, P-256, private)", self.label)
    }
}

impl DeviceSigner for SoftwareSigner {
    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ElementError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| ElementError::Crypto("ECDSA sign"))
    }

    fn key_id(&self) -> &str {
        &self.label
    }
}
