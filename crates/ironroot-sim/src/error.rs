//! Errors that stop a simulation before or while it provisions the fleet.

/// Why the simulator could not run. Device-level failures are counted in the report instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A configuration value is unusable.
    #[error("{0}")]
    Config(String),
    /// The operator API could not be reached.
    #[error("operator API: {0}")]
    Https(#[from] ironroot_https_client::HttpsError),
    /// The operator API refused a call.
    #[error("operator API refused {what}: HTTP {status}: {body}")]
    Refused {
        /// What was asked.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// The server's (short) message.
        body: String,
    },
    /// The CA chain is unusable.
    #[error(transparent)]
    Device(#[from] ironroot_device::DeviceError),
}
