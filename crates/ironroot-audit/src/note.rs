//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys, and the key string
//! formats of Go's `golang.org/x/mod/sumdb/note` package.
//!
//! ```text
//! <text, ending in a newline>
//! <blank line>
//! — <key name> base64(key ID (4 bytes, big-endian) || Ed25519 signature (64 bytes))
//! ```
//!
//! key ID = first 4 bytes of `SHA-256(key name || 0x0A || 0x01 || public key)`.
//!
//! Key strings: a verifier key is `<name>+<key ID as 8 hex digits>+base64(0x01 || public key)`;
//! a signer key is `PRIVATE+KEY+<name>+<key ID>+base64(0x01 || 32-byte seed)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Signature type byte for Ed25519 in the signed-note registry.
pub const ALG_ED25519: u8 = 0x01;
/// Largest note this code parses (a checkpoint is about 200 bytes per signature).
pub const MAX_NOTE_LEN: usize = 64 * 1024;
/// Largest number of signature lines accepted (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// Why a note or a key string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Key names must be non-empty, without Unicode spaces or `+`.
    #[error("invalid key name: it must be non-empty and contain no spaces or '+'")]
    KeyName,
    /// The key string does not have the `name+hash+key` shape, or a part is malformed.
    #[error("malformed {0} key string")]
    KeyString(&'static str),
    /// The key string uses a signature algorithm other than Ed25519.
    #[error("key algorithm {0:#04x} is not supported (only Ed25519, 0x01)")]
    Algorithm(u8),
    /// The key ID in the key string does not match the key.
    #[error("key ID in the key string does not match the key")]
    KeyIdMismatch,
    /// The public key bytes are not a valid Ed25519 point.
    #[error("invalid Ed25519 public key")]
    PublicKey,
    /// The system random number generator failed while generating a key.
    #[error("could not read random bytes for a new key")]
    Random,
    /// The note is larger than [`MAX_NOTE_LEN`].
    #[error("note is longer than 65536 bytes")]
    TooLarge,
    /// The note is not valid UTF-8 or contains control characters other than newline.
    #[error("note contains invalid UTF-8 or control characters")]
    Encoding,
    /// The note text is empty or does not end with a newline.
    #[error("note text is empty or does not end in a newline")]
    Text,
    /// There is no blank line followed by signature lines.
    #[error("note has no signature block")]
    NoSignatures,
    /// A signature line is not `— <name> <base64>` or its signature is too short.
    #[error("malformed signature line")]
    SignatureLine,
    /// More signature lines than [`MAX_SIGNATURES`].
    #[error("note has more than 100 signatures")]
    TooManySignatures,
    /// A signature by a trusted key did not verify.
    #[error("signature by {0} does not verify")]
    BadSignature(String),
    /// No signature by any trusted key is present.
    #[error("note is not signed by a trusted key (expected {0})")]
    Untrusted(String),
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::KeyName);
    }
    Ok(())
}

/// The 4-byte key ID of an Ed25519 key (C2SP signed-note §Ed25519 signatures).
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A trusted public key for checking notes: name, key ID and Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Builds a verifier from a name and a raw public key.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::PublicKey)?;
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, public_key),
            key,
        })
    }

    /// Parses a verifier key string `name+hash+base64(0x01 || key)`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        // The key part is base64 and may itself contain '+': split off name and hash only.
        let mut parts = vkey.trim_end_matches('\n').splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::KeyString("verifier"));
        };
        let id = parse_key_id(hash).ok_or(NoteError::KeyString("verifier"))?;
        let raw = decode_key(key, "verifier")?;
        let v = Self::new(name, &raw)?;
        if v.id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(v)
    }

    /// The key name (for a log: its origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Verifies a signed note against this key, following the spec's rules: signatures by
    /// unknown keys are ignored, a failing signature by this key rejects the note, and at least
    /// one signature by this key must verify. Returns the note text.
    pub fn verify<'a>(&self, note: &'a str) -> Result<VerifiedNote<'a>, NoteError> {
        let parsed = parse_note(note)?;
        let mut verified = false;
        for sig in &parsed.signatures {
            if sig.name != self.name || sig.key_id != self.id {
                continue;
            }
            let bytes: [u8; 64] = sig
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            self.key
                .verify_strict(parsed.text.as_bytes(), &Signature::from_bytes(&bytes))
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            verified = true;
        }
        if !verified {
            return Err(NoteError::Untrusted(self.name.clone()));
        }
        Ok(VerifiedNote { text: parsed.text })
    }
}

impl std::fmt::Display for NoteVerifier {
    /// The verifier key string `name+hash+base64(0x01 || key)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, BASE64.encode(raw))
    }
}

fn parse_key_id(hash: &str) -> Option<u32> {
    if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hash, 16).ok()
}

fn decode_key(text: &str, which: &'static str) -> Result<Zeroizing<[u8; 32]>, NoteError> {
    let raw = Zeroizing::new(
        BASE64
            .decode(text.as_bytes())
            .map_err(|_| NoteError::KeyString(which))?,
    );
    match raw.split_first() {
        Some((&ALG_ED25519, key)) if key.len() == 32 => {
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(key);
            Ok(out)
        }
        Some((&ALG_ED25519, _)) | None => Err(NoteError::KeyString(which)),
        Some((&alg, _)) => Err(NoteError::Algorithm(alg)),
    }
}

/// The text of a note whose signature by a trusted key verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedNote<'a> {
    /// The signed text, including its final newline.
    pub text: &'a str,
}

/// An Ed25519 note signing key with its name. The secret is zeroized on drop and never
/// printed by `Debug`.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    verifier: NoteVerifier,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("verifier", &self.verifier.to_string())
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// Generates a new key from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| NoteError::Random)?;
        Self::from_seed(name, &seed)
    }

    /// Builds a signer from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let verifier = NoteVerifier::new(name, key.verifying_key().as_bytes())?;
        Ok(Self {
            name: name.to_owned(),
            key,
            verifier,
        })
    }

    /// Parses a signer key string `PRIVATE+KEY+name+hash+base64(0x01 || seed)`.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .trim_end_matches('\n')
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::KeyString("signer"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::KeyString("signer"));
        };
        let id = parse_key_id(hash).ok_or(NoteError::KeyString("signer"))?;
        let seed = decode_key(key, "signer")?;
        let signer = Self::from_seed(name, &seed)?;
        if signer.verifier.id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(signer)
    }

    /// The signer key string (secret: store it with owner-only permissions).
    pub fn to_key_string(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(vec![ALG_ED25519]);
        raw.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.verifier.id,
            BASE64.encode(raw.as_slice())
        ))
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs `text` (which must end in a newline and pass the note rules) and returns the whole
    /// signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(68);
        raw.extend_from_slice(&self.verifier.id.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            BASE64.encode(raw)
        ))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Encoding);
    }
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Text);
    }
    Ok(())
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    /// Key name.
    pub name: String,
    /// Key ID (first four bytes of the decoded signature).
    pub key_id: u32,
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// A note split into text and signature lines, signatures not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNote<'a> {
    /// The text, including its final newline.
    pub text: &'a str,
    /// The signature lines, in order.
    pub signatures: Vec<SignatureLine>,
}

/// Splits a note into its text and signature lines (no cryptographic check).
pub fn parse_note(note: &str) -> Result<ParsedNote<'_>, NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge);
    }
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Encoding);
    }
    // The text is separated from the signatures by the last empty line.
    let split = note.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
    let text = &note[..=split];
    let sigs = &note[split + 2..];
    check_text(text)?;
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::NoSignatures);
    }
    let mut signatures = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        if signatures.len() == MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or(NoteError::SignatureLine)?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::SignatureLine)?;
        check_name(name).map_err(|_| NoteError::SignatureLine)?;
        let raw = BASE64
            .decode(b64.as_bytes())
            .map_err(|_| NoteError::SignatureLine)?;
        if raw.len() < 5 {
            return Err(NoteError::SignatureLine);
        }
        signatures.push(SignatureLine {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            signature: raw[4..].to_vec(),
        });
    }
    Ok(ParsedNote { text, signatures })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("example.com/log", &[7u8; 32]).unwrap()
    }

    #[test]
    fn sign_then_verify_and_key_strings_round_trip() {
        let s = signer();
        let note = s.sign("hello\nworld\n").unwrap();
        assert!(note.starts_with("hello\nworld\n\n\u{2014} example.com/log "));
        assert_eq!(s.verifier().verify(&note).unwrap().text, "hello\nworld\n");

        let vkey = s.verifier().to_string();
        assert!(vkey.starts_with(&format!("example.com/log+{:08x}+", s.verifier().key_id())));
        assert_eq!(&NoteVerifier::parse(&vkey).unwrap(), s.verifier());
        let again = NoteSigner::parse(&s.to_key_string()).unwrap();
        assert_eq!(again.verifier(), s.verifier());
    }

    /// Regression: base64 key material may contain '+', the separator of key strings.
    #[test]
    fn key_strings_with_plus_in_the_key_round_trip() {
        let mut found = 0;
        for seed in 0u8..=255 {
            let s = NoteSigner::from_seed("example.com/log", &[seed; 32]).unwrap();
            let vkey = s.verifier().to_string();
            let skey = s.to_key_string();
            if vkey.matches('+').count() > 2 {
                found += 1;
                assert_eq!(&NoteVerifier::parse(&vkey).unwrap(), s.verifier());
                assert_eq!(NoteSigner::parse(&skey).unwrap().verifier(), s.verifier());
            }
        }
        assert!(found > 0, "no seed produced a '+' in its key");
    }

    #[test]
    fn key_id_follows_the_spec_formula() {
        let s = signer();
        let mut h = Sha256::new();
        h.update(b"example.com/log\n\x01");
        h.update(s.verifier().public_key());
        let d = h.finalize();
        assert_eq!(s.verifier().key_id().to_be_bytes(), d[..4]);
    }

    /// The example from the documentation of Go's golang.org/x/mod/sumdb/note package, an
    /// independent implementation of the format.
    #[test]
    fn verifies_the_go_note_package_example() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let note = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n\
                    \n\
                    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let v = NoteVerifier::parse(vkey).unwrap();
        assert_eq!(
            v.verify(note).unwrap().text,
            "If you think cryptography is the answer to your problem,\n\
             then you don't know what your problem is.\n"
        );
        let tampered = note.replace("cryptography", "cryptographY");
        assert_eq!(
            v.verify(&tampered),
            Err(NoteError::BadSignature("PeterNeumann".into()))
        );
    }

    #[test]
    fn unknown_keys_are_ignored_but_one_trusted_signature_is_required() {
        let s = signer();
        let other = NoteSigner::from_seed("other.example/log", &[9u8; 32]).unwrap();
        let note = other.sign("text\n").unwrap();
        assert_eq!(
            s.verifier().verify(&note),
            Err(NoteError::Untrusted("example.com/log".into()))
        );
        // Cosigned: other's line is ignored, ours verifies.
        let ours = s.sign("text\n").unwrap();
        let both = format!("{ours}{}", note.split_once("\n\n").unwrap().1);
        assert!(s.verifier().verify(&both).is_ok());
        // Same name, same ID, bad signature: rejected.
        let forged = ours.replacen(&ours[ours.len() - 10..ours.len() - 1], "AAAAAAAAA", 1);
        assert!(s.verifier().verify(&forged).is_err());
    }

    #[test]
    fn rejects_malformed_notes_and_keys() {
        assert_eq!(parse_note("no signatures\n"), Err(NoteError::NoSignatures));
        assert_eq!(
            parse_note("a\n\nnot a signature\n"),
            Err(NoteError::SignatureLine)
        );
        assert_eq!(
            parse_note("a\x01\n\n\u{2014} k AAAAAAA=\n"),
            Err(NoteError::Encoding)
        );
        assert_eq!(signer().sign("no newline"), Err(NoteError::Text));
        assert!(NoteVerifier::parse("name+zzzzzzzz+AAAA").is_err());
        assert_eq!(
            NoteSigner::from_seed("a b", &[0; 32]).err(),
            Some(NoteError::KeyName)
        );
        let vkey = signer().verifier().to_string();
        let wrong_id = vkey.replacen('+', "+0", 1).replacen(
            &format!("+0{:08x}", signer().verifier().key_id()),
            "+00000000",
            1,
        );
        assert!(NoteVerifier::parse(&wrong_id).is_err());
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in "(.|\n){0,300}") {
            let _ = parse_note(&s);
            let _ = NoteVerifier::parse(&s);
            let _ = NoteSigner::parse(&s);
        }
    }
}
