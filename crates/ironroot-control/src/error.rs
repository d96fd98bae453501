//! The crate's error type.

/// Why the MQTT plane could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Reading the registry (policies, devices, revoked certificates) failed.
    #[error("cannot load the MQTT plane's state from the registry: {0}")]
    Store(#[from] ironroot_store::StoreError),
    /// The CA files could not be read, or the server certificate could not be issued.
    #[error("certificate authority: {0}")]
    Ca(#[from] ironroot_pki::CaError),
    /// The server certificate could not be issued.
    #[error("cannot issue the broker's server certificate: {0}")]
    Issue(#[from] ironroot_pki::IssueError),
    /// The client-certificate verifier could not be built from the CA.
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] ironroot_pki::VerifierError),
    /// The server certificate or key file is unreadable or malformed.
    #[error("server TLS identity: {0}")]
    TlsIdentity(String),
    /// The broker could not start (address in use, bad TLS configuration ...).
    #[error("cannot start the MQTT broker: {0}")]
    Broker(#[from] ironroot_broker::StartError),
    /// A policy stored in the registry no longer parses (edited behind the store's back).
    #[error("stored policy {name:?} is invalid: {reason}")]
    StoredPolicy {
        /// The policy.
        name: String,
        /// Why.
        reason: String,
    },
}
