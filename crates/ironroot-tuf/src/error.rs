//! The crate's error types: every way metadata, a key, a signature or an update can be refused.

use alloc::string::String;

/// Why metadata, a target or an update was refused. Every variant is a refusal of untrusted
/// input or a local failure; none is a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TufError {
    /// The bytes are not JSON, or not the JSON shape the specification defines.
    #[error("{role} metadata is malformed: {reason}")]
    Malformed {
        /// Role (or file) being parsed.
        role: String,
        /// What is wrong.
        reason: String,
    },
    /// Canonical JSON cannot represent the value (floats are not allowed).
    #[error("canonical JSON: {0}")]
    Canonical(&'static str),
    /// `_type` is not the role expected at this step.
    #[error("expected {expected} metadata, got _type {got:?}")]
    WrongType {
        /// The role expected.
        expected: &'static str,
        /// The `_type` found.
        got: String,
    },
    /// `spec_version` is not 1.x.
    #[error("{role}: unsupported spec_version {version:?}")]
    SpecVersion {
        /// Role of the metadata.
        role: String,
        /// The version found.
        version: String,
    },
    /// A key object is not one this client supports or is not a valid public key.
    #[error("key {keyid}: {reason}")]
    BadKey {
        /// The key id.
        keyid: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer valid signatures from distinct keys of the role than its threshold.
    #[error("{role}: {valid} valid signature(s) from distinct keys, threshold is {threshold}")]
    Threshold {
        /// Role whose signatures were counted.
        role: String,
        /// Distinct keys with a valid signature.
        valid: u64,
        /// The role's threshold.
        threshold: u64,
    },
    /// The role the metadata needs is not defined by its delegator.
    #[error("role {0} is not defined by the trusted metadata")]
    UnknownRole(String),
    /// The metadata's expiry time has passed (freeze attack or a stale repository).
    #[error("{role} metadata version {version} expired at {expires}")]
    Expired {
        /// Role of the metadata.
        role: String,
        /// Its version.
        version: u64,
        /// Its `expires` field.
        expires: String,
    },
    /// A version lower than the trusted one (rollback attack).
    #[error("{role}: version {new} is older than the trusted version {trusted} (rollback)")]
    Rollback {
        /// Role (or meta entry) concerned.
        role: String,
        /// The trusted version.
        trusted: u64,
        /// The version offered.
        new: u64,
    },
    /// The version is not the one the referencing metadata names (mix-and-match).
    #[error("{role}: version {got}, but the trusted metadata names version {expected}")]
    VersionMismatch {
        /// Role (or file) concerned.
        role: String,
        /// The version named by the referencing metadata.
        expected: u64,
        /// The version received.
        got: u64,
    },
    /// A file's length differs from the signed length.
    #[error("{name}: {got} bytes, the signed length is {expected}")]
    LengthMismatch {
        /// The file.
        name: String,
        /// The signed length.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// A file's digest differs from the signed hash (or the algorithm is unsupported).
    #[error("{name}: {algorithm} hash does not match the signed hash")]
    HashMismatch {
        /// The file.
        name: String,
        /// The hash algorithm.
        algorithm: String,
    },
    /// A download sent more than the bound (signed length or the spec's default maximum).
    #[error("{name}: more than {limit} bytes (endless data)")]
    TooLarge {
        /// The file.
        name: String,
        /// The bound in bytes.
        limit: u64,
    },
    /// A file the workflow needs is not in the repository.
    #[error("{0} not found in the repository")]
    NotFound(String),
    /// The repository offered more root versions than the client follows in one update.
    #[error("more than {0} root rotations in one update")]
    TooManyRootRotations(u32),
    /// No trusted metadata describes the target.
    #[error("target {0:?} is not in the trusted targets metadata")]
    UnknownTarget(String),
    /// The transport failed (network, file system); the message names the file.
    #[error("fetching {name}: {reason}")]
    Transport {
        /// The file.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The local metadata store failed.
    #[error("metadata store: {0}")]
    Store(String),
    /// The workflow was used out of order (e.g. target lookup before refresh).
    #[error("{0}")]
    Usage(&'static str),
}

impl TufError {
    pub(crate) fn malformed(role: &str, reason: impl Into<String>) -> Self {
        TufError::Malformed {
            role: role.into(),
            reason: reason.into(),
        }
    }
}
