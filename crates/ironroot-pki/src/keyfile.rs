//! The encrypted private-key file: argon2id + AES-256-GCM.
//!
//! # File format, version 1
//!
//! The file is PEM-armored (label `IRONROOT ENCRYPTED PRIVATE KEY`); the armored bytes are:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `IRKEYENC` |
//! | 8 | 1 | format version = `1` |
//! | 9 | 1 | KDF id: `1` = argon2id (Argon2 version 0x13) |
//! | 10 | 4 | argon2 memory cost in KiB (u32, big-endian) |
//! | 14 | 4 | argon2 time cost / iterations (u32, big-endian) |
//! | 18 | 4 | argon2 parallelism (u32, big-endian) |
//! | 22 | 1 | salt length `S` (16..=64) |
//! | 23 | S | salt (random) |
//! | 23+S | 1 | AEAD id: `1` = AES-256-GCM |
//! | 24+S | 12 | nonce (random) |
//! | 36+S | rest | ciphertext followed by the 16-byte GCM tag |
//!
//! The 32-byte AES key is `argon2id(passphrase, salt, m, t, p)`. The plaintext is the key's
//! PKCS#8 (v1) DER. Every header byte (offsets 0 to 36+S) is the AEAD's associated data, so a
//! file whose parameters were lowered by an attacker fails to decrypt instead of being
//! brute-forced cheaply. Readers refuse parameters below [`KdfParams::MIN_M_COST_KIB`] /
//! [`KdfParams::MIN_T_COST`] (weak) or above generous maxima (a denial of service on load).

use zeroize::{Zeroize, Zeroizing};

/// PEM label of an encrypted key file.
pub const PEM_LABEL: &str = "IRONROOT ENCRYPTED PRIVATE KEY";
const MAGIC: &[u8; 8] = b"IRKEYENC";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const AEAD_AES256GCM: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Largest file we read: a PKCS#8 EC key is ~140 bytes; anything near this is not ours.
const MAX_FILE_LEN: usize = 64 * 1024;

/// A passphrase that is wiped from memory when dropped and never printed.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct Passphrase(Vec<u8>);

impl Passphrase {
    /// Wraps passphrase bytes. A single trailing newline (as left by `echo` into a file) is
    /// removed, so `--root-passphrase-file` works with hand-written files.
    pub fn new(mut bytes: Vec<u8>) -> Result<Self, KeyFileError> {
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.len() < Self::MIN_LEN {
            bytes.zeroize();
            return Err(KeyFileError::PassphraseTooShort { min: Self::MIN_LEN });
        }
        Ok(Self(bytes))
    }

    /// Minimum passphrase length in bytes.
    pub const MIN_LEN: usize = 12;

    /// A fresh random passphrase (32 random bytes, hex-encoded: 64 characters).
    pub fn random() -> Result<Self, KeyFileError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(raw.as_mut()).map_err(|_| KeyFileError::Rng)?;
        let mut hex = Vec::with_capacity(64);
        for b in raw.iter() {
            hex.extend_from_slice(format!("{b:02x}").as_bytes());
        }
        Ok(Self(hex))
    }

    /// The passphrase bytes (for writing a freshly generated passphrase to its file).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

/// argon2id cost parameters recorded in the file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Time cost (passes over memory).
    pub t_cost: u32,
    /// Parallelism (lanes).
    pub p_cost: u32,
}

impl KdfParams {
    /// The floor readers and writers enforce: OWASP's minimum argon2id setting (19 MiB).
    pub const MIN_M_COST_KIB: u32 = 19 * 1024;
    /// The floor on the time cost.
    pub const MIN_T_COST: u32 = 2;
    /// Ceiling on memory a file may demand when it is read (4 GiB).
    pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
    /// Ceiling on the time cost a file may demand.
    pub const MAX_T_COST: u32 = 64;
    /// Ceiling on lanes.
    pub const MAX_P_COST: u32 = 16;

    /// The default for CA keys: 64 MiB, 3 passes, 1 lane (about 0.2 s on one core here).
    pub const DEFAULT: Self = Self {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// The cheapest accepted setting (OWASP minimum), used by tests and benchmarks.
    pub const MINIMUM: Self = Self {
        m_cost_kib: Self::MIN_M_COST_KIB,
        t_cost: Self::MIN_T_COST,
        p_cost: 1,
    };

    fn check(&self) -> Result<(), KeyFileError> {
        let ok = (Self::MIN_M_COST_KIB..=Self::MAX_M_COST_KIB).contains(&self.m_cost_kib)
            && (Self::MIN_T_COST..=Self::MAX_T_COST).contains(&self.t_cost)
            && (1..=Self::MAX_P_COST).contains(&self.p_cost)
            && self.m_cost_kib >= 8 * self.p_cost;
        if ok {
            Ok(())
        } else {
            Err(KeyFileError::KdfParamsOutOfRange { params: *self })
        }
    }

    fn derive(
        &self,
        passphrase: &Passphrase,
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
        self.check()?;
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| KeyFileError::KdfParamsOutOfRange { params: *self })?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(&passphrase.0, salt, key.as_mut())
            .map_err(|_| KeyFileError::KdfParamsOutOfRange { params: *self })?;
        Ok(key)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Errors reading or writing an encrypted key file. No variant carries key or passphrase bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The passphrase is shorter than [`Passphrase::MIN_LEN`].
    #[error("passphrase is too short: use at least {min} characters")]
    PassphraseTooShort {
        /// The minimum length.
        min: usize,
    },
    /// The file is not PEM with the `IRONROOT ENCRYPTED PRIVATE KEY` label.
    #[error("not an ironroot encrypted key file (expected a PEM block labelled '{PEM_LABEL}')")]
    NotAKeyFile,
    /// The magic bytes are wrong or the header is cut short.
    #[error("encrypted key file is truncated or has a bad header")]
    Malformed,
    /// A format version, KDF or AEAD this build does not know.
    #[error(
        "encrypted key file uses {what} {value}, which this version of ironroot does not support"
    )]
    Unsupported {
        /// Which field: "format version", "KDF", "cipher".
        what: &'static str,
        /// The value found.
        value: u8,
    },
    /// KDF parameters below the security floor or above the resource ceiling.
    #[error(
        "argon2id parameters m={}KiB t={} p={} are outside the accepted range (m {}..={} KiB, t {}..={}, p 1..={})",
        params.m_cost_kib, params.t_cost, params.p_cost,
        KdfParams::MIN_M_COST_KIB, KdfParams::MAX_M_COST_KIB,
        KdfParams::MIN_T_COST, KdfParams::MAX_T_COST, KdfParams::MAX_P_COST
    )]
    KdfParamsOutOfRange {
        /// The rejected parameters.
        params: KdfParams,
    },
    /// Authentication failed: wrong passphrase, or the file was modified.
    #[error("cannot decrypt the key: wrong passphrase, or the file was modified")]
    WrongPassphraseOrTampered,
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Rng,
    /// The AEAD primitive failed while sealing (should not happen).
    #[error("encryption of the key failed")]
    Seal,
}

/// Encrypts `secret` (a PKCS#8 DER private key) under `passphrase` and returns the PEM text.
pub fn seal(
    secret: &[u8],
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<String, KeyFileError> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

    params.check()?;
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| KeyFileError::Rng)?;
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyFileError::Rng)?;

    let mut out = Vec::with_capacity(36 + SALT_LEN + secret.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(KDF_ARGON2ID);
    out.extend_from_slice(&params.m_cost_kib.to_be_bytes());
    out.extend_from_slice(&params.t_cost.to_be_bytes());
    out.extend_from_slice(&params.p_cost.to_be_bytes());
    out.push(SALT_LEN as u8);
    out.extend_from_slice(&salt);
    out.push(AEAD_AES256GCM);
    out.extend_from_slice(&nonce);
    let header_len = out.len();

    let key = params.derive(passphrase, &salt)?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| KeyFileError::Seal)?,
    );
    let mut body = Zeroizing::new(secret.to_vec());
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..header_len]),
            body.as_mut_slice(),
        )
        .map_err(|_| KeyFileError::Seal)?;
    out.extend_from_slice(&body);
    out.extend_from_slice(tag.as_ref());
    Ok(pem::encode(&pem::Pem::new(PEM_LABEL, out)))
}

/// Decrypts a key file produced by [`seal`]; returns the PKCS#8 DER, wiped on drop.
pub fn open(pem_text: &[u8], passphrase: &Passphrase) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

    if pem_text.len() > MAX_FILE_LEN {
        return Err(KeyFileError::NotAKeyFile);
    }
    let block = pem::parse(pem_text).map_err(|_| KeyFileError::NotAKeyFile)?;
    if block.tag() != PEM_LABEL {
        return Err(KeyFileError::NotAKeyFile);
    }
    let raw = block.contents();
    let header = parse_header(raw)?;
    let key = header.params.derive(passphrase, header.salt)?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| KeyFileError::Malformed)?,
    );
    let mut body = Zeroizing::new(raw[header.len..].to_vec());
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(header.nonce),
            Aad::from(&raw[..header.len]),
            body.as_mut_slice(),
        )
        .map_err(|_| KeyFileError::WrongPassphraseOrTampered)?
        .len();
    body.truncate(plain_len);
    Ok(body)
}

struct Header<'a> {
    params: KdfParams,
    salt: &'a [u8],
    nonce: [u8; NONCE_LEN],
    len: usize,
}

fn parse_header(raw: &[u8]) -> Result<Header<'_>, KeyFileError> {
    let take = |at: usize, n: usize| raw.get(at..at + n).ok_or(KeyFileError::Malformed);
    if take(0, 8)? != MAGIC {
        return Err(KeyFileError::Malformed);
    }
    let version = take(8, 1)?[0];
    if version != VERSION {
        return Err(KeyFileError::Unsupported {
            what: "format version",
            value: version,
        });
    }
    let kdf = take(9, 1)?[0];
    if kdf != KDF_ARGON2ID {
        return Err(KeyFileError::Unsupported {
            what: "KDF",
            value: kdf,
        });
    }
    let u32_at = |at: usize| -> Result<u32, KeyFileError> {
        let b = take(at, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let params = KdfParams {
        m_cost_kib: u32_at(10)?,
        t_cost: u32_at(14)?,
        p_cost: u32_at(18)?,
    };
    let salt_len = take(22, 1)?[0] as usize;
    if !(16..=64).contains(&salt_len) {
        return Err(KeyFileError::Malformed);
    }
    let salt = take(23, salt_len)?;
    let aead = take(23 + salt_len, 1)?[0];
    if aead != AEAD_AES256GCM {
        return Err(KeyFileError::Unsupported {
            what: "cipher",
            value: aead,
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(take(24 + salt_len, NONCE_LEN)?);
    let len = 24 + salt_len + NONCE_LEN;
    if raw.len() < len + TAG_LEN + 1 {
        return Err(KeyFileError::Malformed);
    }
    params.check()?;
    Ok(Header {
        params,
        salt,
        nonce,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn round_trip() {
        let secret = b"pkcs8 bytes would be here".to_vec();
        let file = seal(&secret, &pass("correct horse battery"), KdfParams::MINIMUM).unwrap();
        assert!(file.starts_with("-----BEGIN IRONROOT ENCRYPTED PRIVATE KEY-----"));
        let back = open(file.as_bytes(), &pass("correct horse battery")).unwrap();
        assert_eq!(&back[..], &secret[..]);
    }

    #[test]
    fn wrong_passphrase_is_a_typed_error() {
        let file = seal(
            b"secret",
            &pass("correct horse battery"),
            KdfParams::MINIMUM,
        )
        .unwrap();
        assert!(matches!(
            open(file.as_bytes(), &pass("wrong horse battery")),
            Err(KeyFileError::WrongPassphraseOrTampered)
        ));
    }

    #[test]
    fn every_header_and_body_byte_is_authenticated() {
        let file = seal(
            b"secret key",
            &pass("correct horse battery"),
            KdfParams::MINIMUM,
        )
        .unwrap();
        let raw = pem::parse(file.as_bytes()).unwrap().into_contents();
        for i in 0..raw.len() {
            // Flipping a cost field to another valid value must still fail (header is AAD).
            let mut bad = raw.clone();
            bad[i] ^= if (10..22).contains(&i) { 0x01 } else { 0x80 };
            let text = pem::encode(&pem::Pem::new(PEM_LABEL, bad));
            assert!(
                open(text.as_bytes(), &pass("correct horse battery")).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn weak_or_huge_params_are_refused_before_any_work() {
        let file = seal(
            b"secret",
            &pass("correct horse battery"),
            KdfParams::MINIMUM,
        )
        .unwrap();
        let mut raw = pem::parse(file.as_bytes()).unwrap().into_contents();
        raw[10..14].copy_from_slice(&1024u32.to_be_bytes());
        let text = pem::encode(&pem::Pem::new(PEM_LABEL, raw.clone()));
        assert!(matches!(
            open(text.as_bytes(), &pass("correct horse battery")),
            Err(KeyFileError::KdfParamsOutOfRange { .. })
        ));
        raw[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
        let text = pem::encode(&pem::Pem::new(PEM_LABEL, raw));
        assert!(matches!(
            open(text.as_bytes(), &pass("correct horse battery")),
            Err(KeyFileError::KdfParamsOutOfRange { .. })
        ));
    }

    #[test]
    fn garbage_and_foreign_pem_are_rejected() {
        let p = pass("correct horse battery");
        assert!(matches!(open(b"hello", &p), Err(KeyFileError::NotAKeyFile)));
        let other = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2, 3]));
        assert!(matches!(
            open(other.as_bytes(), &p),
            Err(KeyFileError::NotAKeyFile)
        ));
        let short = pem::encode(&pem::Pem::new(PEM_LABEL, b"IRKEYENC\x01".to_vec()));
        assert!(matches!(
            open(short.as_bytes(), &p),
            Err(KeyFileError::Malformed)
        ));
    }

    #[test]
    fn short_passphrases_are_refused_and_newline_is_trimmed() {
        assert!(matches!(
            Passphrase::new(b"short".to_vec()),
            Err(KeyFileError::PassphraseTooShort { .. })
        ));
        assert_eq!(
            Passphrase::new(b"correct horse battery\n".to_vec())
                .unwrap()
                .expose(),
            b"correct horse battery"
        );
        assert_eq!(
            format!("{:?}", pass("correct horse battery")),
            "Passphrase([redacted])"
        );
    }
}
