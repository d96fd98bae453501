//! One token (slot) of a PKCS#11 module, and the P-256 key pairs in it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use zeroize::Zeroizing;

use crate::error::ck;
use crate::{Pin, Pkcs11Error, ecdsa_raw_to_der};

/// DER of the OID prime256v1 / secp256r1 (1.2.840.10045.3.1.7), the `CKA_EC_PARAMS` value.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Sessions per key pair unless [`Token::sessions_per_key`] says otherwise: a PKCS#11 session
/// runs one operation at a time, and tokens (SoftHSM2, most HSMs) run sessions in parallel.
const DEFAULT_SESSIONS: usize = 4;

/// One initialised context per module per process (C_Initialize may be called only once, and
/// dropping the last handle would C_Finalize it under other users).
fn context(module: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| Pkcs11Error::Poisoned("context registry"))?;
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

/// A logged-in token. Holds one session for the token's lifetime (PKCS#11 login state lasts
/// while a session of the process is open), which also serialises generate and destroy.
pub struct Token {
    ctx: Pkcs11,
    slot: Slot,
    module: PathBuf,
    label: String,
    serial: String,
    model: String,
    mechanisms: Vec<MechanismType>,
    sessions_per_key: usize,
    pin: Pin,
    admin: Mutex<Session>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("module", &self.module)
            .field("label", &self.label)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads `module` (once per process), finds the token labelled `token_label` and logs in
    /// with `pin`. A wrong PIN is [`Pkcs11Error::Call`] with `operation == "C_Login"`.
    pub fn open(module: &Path, token_label: &str, pin: &Pin) -> Result<Self, Pkcs11Error> {
        let ctx = context(module)?;
        let mut found = None;
        for slot in ctx.get_slots_with_token().map_err(ck("C_GetSlotList"))? {
            let info = ctx.get_token_info(slot).map_err(ck("C_GetTokenInfo"))?;
            if info.label().trim_end() == token_label {
                found = Some((slot, info));
                break;
            }
        }
        let (slot, info) = found.ok_or_else(|| Pkcs11Error::TokenNotFound(token_label.into()))?;
        let mechanisms = ctx
            .get_mechanism_list(slot)
            .map_err(ck("C_GetMechanismList"))?;
        let admin = ctx.open_rw_session(slot).map_err(ck("C_OpenSession"))?;
        login(&admin, pin)?;
        Ok(Self {
            slot,
            module: module.to_owned(),
            label: token_label.to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            model: format!("{} {}", info.manufacturer_id(), info.model())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            mechanisms,
            sessions_per_key: DEFAULT_SESSIONS,
            pin: pin.clone(),
            admin: Mutex::new(admin),
            ctx,
        })
    }

    /// Sets how many sessions each key pair opened from now on signs through (at least 1).
    pub fn sessions_per_key(mut self, sessions: usize) -> Self {
        self.sessions_per_key = sessions.max(1);
        self
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The token's serial number (`CK_TOKEN_INFO.serialNumber`, trailing blanks removed).
    pub fn serial_number(&self) -> &str {
        &self.serial
    }

    /// Manufacturer and model as the token reports them (e.g. `"SoftHSM project SoftHSM v2"`).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The module this token was opened through.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// Whether the token offers ECDH (`CKM_ECDH1_DERIVE`).
    pub fn has_ecdh(&self) -> bool {
        self.mechanisms.contains(&MechanismType::ECDH1_DERIVE)
    }

    fn admin(&self) -> Result<MutexGuard<'_, Session>, Pkcs11Error> {
        self.admin
            .lock()
            .map_err(|_| Pkcs11Error::Poisoned("token"))
    }

    /// A new logged-in session (login state is shared by the process's sessions on a token).
    fn session(&self) -> Result<Session, Pkcs11Error> {
        let session = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(ck("C_OpenSession"))?;
        login(&session, &self.pin)?;
        Ok(session)
    }

    /// Generates a P-256 key pair labelled `key_label` inside the token: private half
    /// `CKA_SENSITIVE=true`, `CKA_EXTRACTABLE=false`, signing only — plus `CKA_DERIVE` when
    /// `ecdh` is asked and the token offers `CKM_ECDH1_DERIVE`. Refuses a label already in use
    /// ([`Pkcs11Error::KeyExists`]): keys are never silently replaced.
    pub fn generate(&self, key_label: &str, ecdh: bool) -> Result<KeyPair, Pkcs11Error> {
        let admin = self.admin()?;
        let taken = !find(&admin, ObjectClass::PRIVATE_KEY, key_label)?.is_empty()
            || !find(&admin, ObjectClass::PUBLIC_KEY, key_label)?.is_empty();
        if taken {
            return Err(Pkcs11Error::KeyExists {
                token: self.label.clone(),
                label: key_label.to_owned(),
            });
        }
        let label = key_label.as_bytes().to_vec();
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::KeyType(KeyType::EC),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(label.clone()),
        ];
        let mut private_template = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.clone()),
            Attribute::Id(label),
        ];
        let derive = ecdh && self.has_ecdh();
        if derive {
            private_template.push(Attribute::Derive(true));
        }
        admin
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(ck("C_GenerateKeyPair"))?;
        drop(admin);
        self.open_key(key_label)
    }

    /// Opens the existing key pair labelled `key_label` ([`Pkcs11Error::NoSuchKey`] if none).
    pub fn open_key(&self, key_label: &str) -> Result<KeyPair, Pkcs11Error> {
        let mut sessions = Vec::with_capacity(self.sessions_per_key);
        let mut public = None;
        for _ in 0..self.sessions_per_key {
            let session = self.session()?;
            let (key, public_handle) = self.find_pair(&session, key_label)?;
            if public.is_none() {
                public = Some(read_point(&session, public_handle, key_label)?);
            }
            sessions.push(Mutex::new(PooledSession { session, key }));
        }
        let can_derive = self.has_ecdh() && {
            let first = sessions[0]
                .lock()
                .map_err(|_| Pkcs11Error::Poisoned("session"))?;
            let attrs = first
                .session
                .get_attributes(first.key, &[AttributeType::Derive])
                .map_err(ck("C_GetAttributeValue"))?;
            attrs.contains(&Attribute::Derive(true))
        };
        Ok(KeyPair {
            sessions,
            next: AtomicUsize::new(0),
            public: public.unwrap_or_default(),
            label: key_label.to_owned(),
            token: self.label.clone(),
            can_derive,
        })
    }

    /// Destroys every private and public object labelled `key_label` (C_DestroyObject).
    /// [`Pkcs11Error::NoSuchKey`] if there is none. Key pairs already open stop working.
    pub fn destroy(&self, key_label: &str) -> Result<(), Pkcs11Error> {
        let admin = self.admin()?;
        let mut objects = find(&admin, ObjectClass::PRIVATE_KEY, key_label)?;
        objects.extend(find(&admin, ObjectClass::PUBLIC_KEY, key_label)?);
        if objects.is_empty() {
            return Err(self.no_such_key(key_label));
        }
        for object in objects {
            admin
                .destroy_object(object)
                .map_err(ck("C_DestroyObject"))?;
        }
        Ok(())
    }

    fn no_such_key(&self, key_label: &str) -> Pkcs11Error {
        Pkcs11Error::NoSuchKey {
            token: self.label.clone(),
            label: key_label.to_owned(),
        }
    }

    /// The one private key and the one public key labelled `label`.
    fn find_pair(
        &self,
        session: &Session,
        label: &str,
    ) -> Result<(ObjectHandle, ObjectHandle), Pkcs11Error> {
        let privs = find(session, ObjectClass::PRIVATE_KEY, label)?;
        let pubs = find(session, ObjectClass::PUBLIC_KEY, label)?;
        match (&privs[..], &pubs[..]) {
            ([key], [public]) => Ok((*key, *public)),
            ([], []) => Err(self.no_such_key(label)),
            _ => Err(Pkcs11Error::Ambiguous {
                label: label.to_owned(),
                private: privs.len(),
                public: pubs.len(),
            }),
        }
    }
}

fn login(session: &Session, pin: &Pin) -> Result<(), Pkcs11Error> {
    // PKCS#11 login state is shared by all sessions of a process on a token: once logged in,
    // C_Login answers "already logged in" without checking the PIN again. The PIN guards the
    // token against other processes; within this one it was already proven.
    match session.login(UserType::User, Some(&pin.auth())) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(ck("C_Login")(e)),
    }
}

fn find(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
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

fn read_point(
    session: &Session,
    handle: ObjectHandle,
    label: &str,
) -> Result<Vec<u8>, Pkcs11Error> {
    let attrs = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(ck("C_GetAttributeValue"))?;
    attrs
        .iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => unwrap_ec_point(p),
            _ => None,
        })
        .ok_or_else(|| Pkcs11Error::NotP256(label.to_owned()))
}

/// One session with the key's handle in it (handles are looked up per session).
struct PooledSession {
    session: Session,
    key: ObjectHandle,
}

/// How the token protects a private key, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    /// `CKA_SENSITIVE`: the value is never revealed.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key can be wrapped out of the token.
    pub extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`: the key has been sensitive since it was made.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`: the key has never been extractable.
    pub never_extractable: bool,
}

/// An open P-256 key pair in a token, signing through a small pool of sessions.
///
/// `sign` blocks for the token's latency: async callers run it on a blocking thread.
pub struct KeyPair {
    sessions: Vec<Mutex<PooledSession>>,
    next: AtomicUsize,
    public: Vec<u8>,
    label: String,
    token: String,
    can_derive: bool,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("token", &self.token)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// The key's `CKA_LABEL`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The public key as an uncompressed SEC1 point (65 bytes).
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// A free session if one is idle (starting round-robin), else waits for the next one.
    fn session(&self) -> Result<MutexGuard<'_, PooledSession>, Pkcs11Error> {
        let poisoned = || Pkcs11Error::Poisoned("session");
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

    /// Signs `message` (SHA-256 here, raw `CKM_ECDSA` in the token) and returns the DER
    /// `ECDSA-Sig-Value`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        let raw = {
            let pooled = self.session()?;
            pooled
                .session
                .sign(&Mechanism::Ecdsa, pooled.key, digest.as_ref())
                .map_err(ck("C_Sign"))?
        };
        if raw.len() != 64 {
            return Err(Pkcs11Error::BadSignature { len: raw.len() });
        }
        ecdsa_raw_to_der(&raw).ok_or(Pkcs11Error::BadSignature { len: raw.len() })
    }

    /// ECDH P-256 with `peer` (uncompressed SEC1 point) inside the token (`CKM_ECDH1_DERIVE`,
    /// null KDF); returns the shared x-coordinate, wiped on drop. The derived session object is
    /// destroyed before returning. `Ok(None)` if `peer` is not a valid P-256 point.
    pub fn ecdh(&self, peer: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, Pkcs11Error> {
        use aws_lc_rs::agreement::{ECDH_P256, ParsedPublicKey, UnparsedPublicKey};
        if !self.can_derive {
            return Err(Pkcs11Error::Unsupported {
                token: self.token.clone(),
                mechanism: "ECDH (CKM_ECDH1_DERIVE on this key)",
            });
        }
        if peer.len() != 65
            || ParsedPublicKey::try_from(&UnparsedPublicKey::new(&ECDH_P256, peer)).is_err()
        {
            return Ok(None);
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::ValueLen(32.into()),
        ];
        let params = Ecdh1DeriveParams::new(EcKdf::null(), peer);
        let pooled = self.session()?;
        let derived = pooled
            .session
            .derive_key(&Mechanism::Ecdh1Derive(params), pooled.key, &template)
            .map_err(ck("C_DeriveKey"))?;
        let value = pooled
            .session
            .get_attributes(derived, &[AttributeType::Value])
            .map_err(ck("C_GetAttributeValue"));
        let destroyed = pooled
            .session
            .destroy_object(derived)
            .map_err(ck("C_DestroyObject"));
        let secret = value?.into_iter().find_map(|a| match a {
            Attribute::Value(v) => Some(Zeroizing::new(v)),
            _ => None,
        });
        destroyed?;
        secret.map(Some).ok_or(Pkcs11Error::Unsupported {
            token: self.token.clone(),
            mechanism: "reading the ECDH shared secret",
        })
    }

    /// Asks the token about one attribute of the private key without reading its value
    /// (C_GetAttributeValue with no buffer): how tests and audits prove that `CKA_VALUE` is
    /// refused ([`AttributeInfo::Sensitive`]).
    pub fn probe_private(&self, attribute: AttributeType) -> Result<AttributeInfo, Pkcs11Error> {
        let pooled = self.session()?;
        let info = pooled
            .session
            .get_attribute_info(pooled.key, &[attribute])
            .map_err(ck("C_GetAttributeValue"))?;
        Ok(info
            .into_iter()
            .next()
            .unwrap_or(AttributeInfo::Unavailable))
    }

    /// The private key's protection flags as the token reports them.
    pub fn protection(&self) -> Result<KeyProtection, Pkcs11Error> {
        let pooled = self.session()?;
        let attrs = pooled
            .session
            .get_attributes(
                pooled.key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                ],
            )
            .map_err(ck("C_GetAttributeValue"))?;
        let mut p = KeyProtection {
            sensitive: false,
            extractable: true,
            always_sensitive: false,
            never_extractable: false,
        };
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => p.sensitive = v,
                Attribute::Extractable(v) => p.extractable = v,
                Attribute::AlwaysSensitive(v) => p.always_sensitive = v,
                Attribute::NeverExtractable(v) => p.never_extractable = v,
                _ => {}
            }
        }
        Ok(p)
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
}
