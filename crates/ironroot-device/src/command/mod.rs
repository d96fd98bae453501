//! Signed commands from the server to a device, verified against the root the device trusts.
//!
//! The MQTT broker only carries commands; it cannot author one. A command is accepted only
//! when all of these hold, checked in this order:
//!
//! ```text
//!  bytes ≤ 16 KiB ─▶ envelope JSON {"payload","signature","chain"} (base64url / base64 DER)
//!    ─▶ chain (≤ 4) ends at the device's trust anchor, valid at the CA-clock estimate
//!    ─▶ leaf carries the command-signer profile: EKU codeSigning + SAN URI urn:ironroot:command-signer
//!    ─▶ ECDSA P-256 / SHA-256 signature of the leaf over "ironroot-command-v1\0" || payload
//!    ─▶ payload JSON {"type","device","id","issued_at","expires_at"}: device == own id,
//!       issued_at − 5 min ≤ now < expires_at, lifetime ≤ 1 h
//!    ─▶ id not seen before (replay set, entries dropped once their command expired)
//! ```
//!
//! This module is pure (no tokio, no I/O): the [`CommandVerifier`] takes bytes and a CA time
//! and returns a [`VerifiedCommand`] or a typed [`CommandError`], so an MCU port can use it as
//! is. The signature is the DER `ECDSA-Sig-Value` X.509 uses (what every ironroot signer,
//! software or PKCS#11, returns), not the JOSE raw `r || s`.

mod replay;
#[cfg(test)]
mod tests;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

pub use replay::ReplaySet;

/// The SAN URI a command-signing certificate carries (`ironroot_pki::COMMAND_SIGNER_URI`; the
/// server's tests check both agree).
pub const COMMAND_SIGNER_URI: &str = "urn:ironroot:command-signer";

/// Domain separation: what is signed is this prefix followed by the payload bytes, so a
/// signature made for anything else never verifies as a command.
pub const SIGNING_CONTEXT: &[u8] = b"ironroot-command-v1\0";

/// Largest envelope accepted, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024;

/// Most certificates in an envelope's chain.
pub const MAX_CHAIN: usize = 4;

/// Longest window a command may have (`expires_at − issued_at`), seconds: bounds how long an
/// id must be remembered.
pub const MAX_LIFETIME_SECS: i64 = 3_600;

/// How far `issued_at` may be ahead of the device's CA-clock estimate, seconds.
pub const CLOCK_TOLERANCE_SECS: i64 = 300;

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER value bytes.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// The signed envelope as it travels (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The [`Command`] JSON, base64url without padding.
    pub payload: String,
    /// DER ECDSA signature over [`SIGNING_CONTEXT`] `||` payload bytes, base64url without padding.
    pub signature: String,
    /// The signer's certificate then its issuers (not the root), each base64 DER.
    pub chain: Vec<String>,
}

/// What a command says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// What the device is told to do.
    #[serde(rename = "type")]
    pub kind: CommandKind,
    /// The device it is for.
    pub device: String,
    /// A unique id (UUID): the device acts on each id once.
    pub id: String,
    /// CA time it was signed, Unix seconds.
    pub issued_at: i64,
    /// CA time after which it is void, Unix seconds.
    pub expires_at: i64,
}

/// The commands a device understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CommandKind {
    /// Destroy the identity keys in the element and stop for good (end of life).
    Decommission,
}

impl CommandKind {
    /// The name on the wire (`"decommission"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decommission => "decommission",
        }
    }
}

impl Command {
    /// Parses a payload (strict JSON: no unknown fields; id of 1 to 64 letters, digits, '-').
    /// Only [`CommandVerifier::verify`] calls it on received bytes, after the signature.
    pub fn parse(payload: &[u8]) -> Result<Self, CommandError> {
        let command: Command = serde_json::from_slice(payload)
            .map_err(|e| CommandError::Malformed(format!("payload: {e}")))?;
        let id_ok = !command.id.is_empty()
            && command.id.len() <= 64
            && command
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !id_ok {
            return Err(CommandError::Malformed("payload: bad id".into()));
        }
        Ok(command)
    }
}

impl Envelope {
    /// Signs `command` into envelope JSON bytes: `sign` gets the bytes to sign and returns the
    /// DER ECDSA signature (a server passes its signer; keys never reach this function).
    pub fn seal<E>(
        command: &Command,
        chain: &[CertificateDer<'_>],
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        // Serializing a struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(command).unwrap_or_default();
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(&payload);
        let signature = sign(&message)?;
        let envelope = Envelope {
            payload: URL_SAFE_NO_PAD.encode(&payload),
            signature: URL_SAFE_NO_PAD.encode(signature),
            chain: chain.iter().map(|c| STANDARD.encode(c.as_ref())).collect(),
        };
        Ok(serde_json::to_vec(&envelope).unwrap_or_default())
    }

    /// Parses envelope bytes (size, JSON, base64 of every field, chain length). Nothing is
    /// verified yet: see [`CommandVerifier::verify`].
    pub fn parse(bytes: &[u8]) -> Result<Parsed, CommandError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(CommandError::TooLarge);
        }
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| CommandError::Malformed(format!("envelope: {e}")))?;
        if envelope.chain.is_empty() || envelope.chain.len() > MAX_CHAIN {
            return Err(CommandError::Malformed(format!(
                "chain has {} certificates; 1 to {MAX_CHAIN} expected",
                envelope.chain.len()
            )));
        }
        let b64url = |what: &str, s: &str| {
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|e| CommandError::Malformed(format!("{what}: {e}")))
        };
        let payload = b64url("payload", &envelope.payload)?;
        let signature = b64url("signature", &envelope.signature)?;
        let chain = envelope
            .chain
            .iter()
            .map(|c| {
                STANDARD
                    .decode(c)
                    .map(CertificateDer::from)
                    .map_err(|e| CommandError::Malformed(format!("chain: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Parsed {
            payload,
            signature,
            chain,
        })
    }
}

/// An envelope decoded but not verified.
#[derive(Debug, Clone)]
pub struct Parsed {
    payload: Vec<u8>,
    signature: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
}

/// A command that passed every check of [`CommandVerifier::verify`] (its id is now recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCommand(Command);

impl VerifiedCommand {
    /// What to do.
    pub fn kind(&self) -> CommandKind {
        self.0.kind
    }

    /// The command's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The whole command.
    pub fn command(&self) -> &Command {
        &self.0
    }
}

/// Why a command was refused. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Over [`MAX_ENVELOPE_BYTES`].
    #[error("command refused: envelope larger than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    /// Not an envelope or payload of the expected shape.
    #[error("command refused: malformed {0}")]
    Malformed(String),
    /// The chain does not lead to the trusted root at CA time now (or lacks codeSigning).
    #[error("command refused: signer certificate not trusted: {0}")]
    Untrusted(String),
    /// The signer certificate chains to the root but is not a command signer.
    #[error("command refused: signer certificate lacks the {COMMAND_SIGNER_URI} profile")]
    NotCommandSigner,
    /// The signature does not match the payload and the signer's key.
    #[error("command refused: bad signature")]
    BadSignature,
    /// The command names another device.
    #[error("command refused: it is for device {0:?}, not this one")]
    WrongDevice(String),
    /// `issued_at` is ahead of the CA-clock estimate by more than the tolerance.
    #[error("command refused: issued in the future")]
    NotYetValid,
    /// `expires_at` has passed, or the window is longer than [`MAX_LIFETIME_SECS`].
    #[error("command refused: expired or with a window longer than {MAX_LIFETIME_SECS} s")]
    Expired,
    /// This id was accepted before.
    #[error("command refused: replayed id {0}")]
    Replayed(String),
    /// Too many live ids to remember; refused rather than forgotten.
    #[error("command refused: too many recent commands to track replays")]
    ReplaySetFull,
}

impl CommandError {
    /// A short reason class for logs and counters (`bad_signature`, `replayed`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
            Self::Untrusted(_) => "untrusted_signer",
            Self::NotCommandSigner => "not_command_signer",
            Self::BadSignature => "bad_signature",
            Self::WrongDevice(_) => "wrong_device",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::Replayed(_) => "replayed",
            Self::ReplaySetFull => "replay_set_full",
        }
    }
}

/// Verifies commands for one device against its trust anchors, remembering accepted ids.
#[derive(Debug, Clone)]
pub struct CommandVerifier {
    anchors: Vec<TrustAnchor<'static>>,
    device_id: String,
    seen: ReplaySet,
}

impl CommandVerifier {
    /// A verifier for `device_id` trusting `anchors` (the device's root).
    pub fn new(anchors: Vec<TrustAnchor<'static>>, device_id: impl Into<String>) -> Self {
        Self {
            anchors,
            device_id: device_id.into(),
            seen: ReplaySet::default(),
        }
    }

    /// Verifies envelope `bytes` at CA time `ca_now` (Unix seconds, the device's
    /// [`crate::core::CaClock`] estimate). On success the id is recorded, so the same
    /// command is refused next time.
    pub fn verify(&mut self, bytes: &[u8], ca_now: i64) -> Result<VerifiedCommand, CommandError> {
        let parsed = Envelope::parse(bytes)?;
        let command = self.check_signed(&parsed, ca_now)?;
        if command.device != self.device_id {
            return Err(CommandError::WrongDevice(command.device));
        }
        if command.expires_at <= command.issued_at
            || command.expires_at - command.issued_at > MAX_LIFETIME_SECS
            || ca_now >= command.expires_at
        {
            return Err(CommandError::Expired);
        }
        if command.issued_at.saturating_sub(CLOCK_TOLERANCE_SECS) > ca_now {
            return Err(CommandError::NotYetValid);
        }
        self.seen.insert(&command.id, command.expires_at, ca_now)?;
        Ok(VerifiedCommand(command))
    }

    /// Chain, profile and signature; returns the decoded payload.
    fn check_signed(&self, parsed: &Parsed, ca_now: i64) -> Result<Command, CommandError> {
        let leaf = parsed.chain.first().ok_or(CommandError::NotCommandSigner)?;
        let ee = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| CommandError::Untrusted(e.to_string()))?;
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(ca_now).unwrap_or(0),
        ));
        ee.verify_for_usage(
            &[webpki::aws_lc_rs::ECDSA_P256_SHA256],
            &self.anchors,
            &parsed.chain[1..],
            now,
            // webpki applies the EKU rule to every certificate of the path; ironroot CAs carry
            // no EKU, so "if present" here and the leaf's own codeSigning in `is_signer`.
            webpki::KeyUsage::required_if_present(CODE_SIGNING),
            None,
            None,
        )
        .map_err(|e| CommandError::Untrusted(e.to_string()))?;
        if !is_signer(leaf) {
            return Err(CommandError::NotCommandSigner);
        }
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(&parsed.payload);
        ee.verify_signature(
            webpki::aws_lc_rs::ECDSA_P256_SHA256,
            &message,
            &parsed.signature,
        )
        .map_err(|_| CommandError::BadSignature)?;
        Command::parse(&parsed.payload)
    }
}

/// Whether the certificate has the command-signer profile: extendedKeyUsage codeSigning and,
/// among its SAN URIs, exactly the command-signer URI.
fn is_signer(der: &CertificateDer<'_>) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    if !matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.code_signing) {
        return false;
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    uris.next() == Some(COMMAND_SIGNER_URI) && uris.next().is_none()
}
