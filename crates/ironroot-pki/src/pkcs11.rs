//! CA keys in a PKCS#11 token (HSM, SoftHSM2, tpm2-pkcs11) via `cryptoki`.
//!
//! The private key is generated inside the token as non-extractable and never leaves it. To
//! sign, ironroot hashes the message with SHA-256 itself and asks the token for a raw
//! `CKM_ECDSA` signature over the digest, then DER-encodes the returned `r || s`: SoftHSM 2.6
//! rejects `CKM_ECDSA_SHA256`, and every token supports `CKM_ECDSA`.
//!
//! A key is named by [`Pkcs11KeyRef`] (module path, token label, key label), which is what the
//! CA state file records; the user PIN is given at start-up and never stored.
//!
//! A [`Pkcs11Signer`] signs through [`SESSION_POOL`] sessions, so concurrent issuances reach
//! the token in parallel instead of queueing on one session. `sign` blocks for the token's
//! latency: async callers run it on a blocking thread (the identity service does).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::signer::{CaSigner, SignerError, ecdsa_raw_to_der};

/// DER of the OID prime256v1 / secp256r1 (1.2.840.10045.3.1.7), the `CKA_EC_PARAMS` value.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Where a CA key lives in a PKCS#11 token. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pkcs11KeyRef {
    /// Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token (`softhsm2-util --init-token --label ...`).
    pub token_label: String,
    /// `CKA_LABEL` of the key pair.
    pub key_label: String,
}

/// A token user PIN, wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN (a trailing newline, as left in PIN files, is removed).
    pub fn new(mut pin: String) -> Self {
        while pin.ends_with('\n') || pin.ends_with('\r') {
            pin.pop();
        }
        Self(Zeroizing::new(pin))
    }

    /// Reads a PIN file (the whole file, one trailing newline removed). The error names the
    /// file, never its content.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let bytes = Zeroizing::new(std::fs::read(path)?);
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "PIN file is not UTF-8")
        })?;
        Ok(Self::new(text.to_owned()))
    }

    fn auth(&self) -> AuthPin {
        AuthPin::from(self.0.as_str().to_owned())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

/// Sessions a [`Pkcs11Signer`] opens: a PKCS#11 session runs one operation at a time, so one
/// session serialises every signature; tokens (SoftHSM2, most HSMs) run sessions in parallel.
pub const SESSION_POOL: usize = 4;

/// One session with the key's handle in it (handles are looked up per session).
struct PooledSession {
    session: Session,
    key: ObjectHandle,
}

/// A CA signing key held in a PKCS#11 token, signing through a small pool of sessions.
///
/// `sign` blocks for the token's latency: call it from a blocking thread
/// (`tokio::task::spawn_blocking`), never on an async worker.
pub struct Pkcs11Signer {
    sessions: Vec<Mutex<PooledSession>>,
    next: AtomicUsize,
    public: Vec<u8>,
    reference: Pkcs11KeyRef,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

fn ck(operation: &'static str) -> impl FnOnce(CkError) -> SignerError {
    move |source| SignerError::Pkcs11 { operation, source }
}

/// One initialised context per module per process (C_Initialize may be called only once).
fn context(module: &Path) -> Result<Pkcs11, SignerError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| SignerError::Pkcs11Key("context registry is poisoned".into()))?;
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(ck("loading the module"))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck("C_Initialize")(e)),
    }
    map.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

fn login(reference: &Pkcs11KeyRef, pin: &Pin) -> Result<Session, SignerError> {
    let ctx = context(&reference.module)?;
    let slots = ctx.get_slots_with_token().map_err(ck("C_GetSlotList"))?;
    let mut found = None;
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(ck("C_GetTokenInfo"))?;
        if info.label().trim_end() == reference.token_label {
            found = Some(slot);
            break;
        }
    }
    let slot = found.ok_or_else(|| {
        SignerError::Pkcs11Key(format!("token '{}' not found", reference.token_label))
    })?;
    let session = ctx.open_rw_session(slot).map_err(ck("C_OpenSession"))?;
    // PKCS#11 login state is shared by all sessions of a process on a token: once logged in,
    // C_Login answers "already logged in" without checking the PIN again. The PIN guards the
    // token against other processes; within this one it was already proven.
    match session.login(UserType::User, Some(&pin.auth())) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(ck("C_Login")(e)),
    }
}

fn find(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Vec<ObjectHandle>, SignerError> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(ck("C_FindObjects"))
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the SEC1 point; some tokens return the bare
/// point. Accept both, return the bare uncompressed point.
fn unwrap_ec_point(value: &[u8]) -> Option<Vec<u8>> {
    match value {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 && rest[0] == 0x04 => Some(rest.to_vec()),
        [0x04, ..] if value.len() == 65 => Some(value.to_vec()),
        _ => None,
    }
}

impl Pkcs11Signer {
    /// Opens an existing P-256 key pair labelled `reference.key_label`, with
    /// [`SESSION_POOL`] sessions.
    pub fn open(reference: &Pkcs11KeyRef, pin: &Pin) -> Result<Self, SignerError> {
        let session = login(reference, pin)?;
        let (key, public_handle) = find_pair(&session, &reference.key_label)?;
        let public = read_point(&session, public_handle)?;
        Self::with_pool(reference, pin, PooledSession { session, key }, public)
    }

    /// The first session plus `SESSION_POOL - 1` more, each with its own key handle.
    fn with_pool(
        reference: &Pkcs11KeyRef,
        pin: &Pin,
        first: PooledSession,
        public: Vec<u8>,
    ) -> Result<Self, SignerError> {
        let mut sessions = vec![Mutex::new(first)];
        for _ in 1..SESSION_POOL {
            let session = login(reference, pin)?;
            let (key, _) = find_pair(&session, &reference.key_label)?;
            sessions.push(Mutex::new(PooledSession { session, key }));
        }
        Ok(Self {
            sessions,
            next: AtomicUsize::new(0),
            public,
            reference: reference.clone(),
        })
    }

    /// Generates a new P-256 key pair in the token (private half sensitive and
    /// non-extractable). Fails if a key with that label already exists.
    pub fn generate(reference: &Pkcs11KeyRef, pin: &Pin) -> Result<Self, SignerError> {
        let session = login(reference, pin)?;
        let label = reference.key_label.as_bytes().to_vec();
        if !find(&session, ObjectClass::PRIVATE_KEY, &reference.key_label)?.is_empty() {
            return Err(SignerError::Pkcs11Key(format!(
                "a key labelled '{}' already exists in token '{}'",
                reference.key_label, reference.token_label
            )));
        }
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::KeyType(KeyType::EC),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(label.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.clone()),
            Attribute::Id(label),
        ];
        let (public_handle, key) = session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(ck("C_GenerateKeyPair"))?;
        let public = read_point(&session, public_handle)?;
        Self::with_pool(reference, pin, PooledSession { session, key }, public)
    }

    /// The key's location.
    pub fn reference(&self) -> &Pkcs11KeyRef {
        &self.reference
    }
}

/// The one private key and the one public key labelled `label`.
fn find_pair(session: &Session, label: &str) -> Result<(ObjectHandle, ObjectHandle), SignerError> {
    let privs = find(session, ObjectClass::PRIVATE_KEY, label)?;
    let [key] = privs[..] else {
        return Err(SignerError::Pkcs11Key(format!(
            "expected exactly one private key labelled '{label}', found {}",
            privs.len()
        )));
    };
    let pubs = find(session, ObjectClass::PUBLIC_KEY, label)?;
    let [public] = pubs[..] else {
        return Err(SignerError::Pkcs11Key(format!(
            "expected exactly one public key labelled '{label}', found {}",
            pubs.len()
        )));
    };
    Ok((key, public))
}

fn read_point(session: &Session, handle: ObjectHandle) -> Result<Vec<u8>, SignerError> {
    let attrs = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(ck("C_GetAttributeValue"))?;
    attrs
        .iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => unwrap_ec_point(p),
            _ => None,
        })
        .ok_or_else(|| {
            SignerError::Pkcs11Key("public key is not an uncompressed P-256 point".into())
        })
}

impl Pkcs11Signer {
    /// A free session if one is idle (starting round-robin), else waits for the next one.
    fn session(&self) -> Result<std::sync::MutexGuard<'_, PooledSession>, SignerError> {
        let poisoned = || SignerError::Pkcs11Key("session lock is poisoned".into());
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            match self.sessions[(start + i) % n].try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
            }
        }
        self.sessions[start % n].lock().map_err(|_| poisoned())
    }
}

impl CaSigner for Pkcs11Signer {
    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let raw = {
            let pooled = self.session()?;
            pooled
                .session
                .sign(&Mechanism::Ecdsa, pooled.key, digest.as_ref())
                .map_err(ck("C_Sign"))?
        };
        if raw.len() != 64 {
            return Err(SignerError::Pkcs11BadSignature { len: raw.len() });
        }
        ecdsa_raw_to_der(&raw).ok_or(SignerError::Pkcs11BadSignature { len: raw.len() })
    }

    fn describe(&self) -> String {
        format!(
            "PKCS#11 token '{}' key '{}'",
            self.reference.token_label, self.reference.key_label
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_forms() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend(&point);
        assert_eq!(unwrap_ec_point(&wrapped).unwrap(), point);
        assert_eq!(unwrap_ec_point(&point).unwrap(), point);
        assert!(unwrap_ec_point(&[0x04, 0x21, 0x02]).is_none());
    }

    #[test]
    fn pin_is_trimmed_and_redacted() {
        let pin = Pin::new("1234\n".into());
        assert_eq!(pin.0.as_str(), "1234");
        assert_eq!(format!("{pin:?}"), "Pin([redacted])");
    }
}
