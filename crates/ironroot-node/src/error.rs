//! The crate's error types.

use std::path::PathBuf;

/// Why a node configuration could not be read, parsed or printed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, holds an unknown key, or a value of the wrong form.
    #[error("{path}: {}{message}", if key.is_empty() { String::new() } else { format!("key `{key}`: ") })]
    Parse {
        /// The file.
        path: PathBuf,
        /// The dotted key path (`mqtt.limits.publish_rate`); empty for a TOML syntax error.
        key: String,
        /// What is wrong (names an unknown key, or the expected form).
        message: String,
    },
    /// A flag (or its environment variable) has a value the file would refuse too.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag (`--mqtt-publish-rate`).
        flag: String,
        /// What is wrong, as for the file's key.
        message: String,
    },
    /// A secret file named by the configuration could not be read.
    #[error("cannot read {what} from {path}: {source}")]
    SecretFile {
        /// Which secret (`the CA passphrase`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration could not be written as TOML.
    #[error("cannot print the configuration: {0}")]
    Print(String),
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTPS server (CA, registry, audit log, identity service) could not start.
    #[error("cannot start the server: {0}")]
    Server(#[from] ironroot_server::StartError),
    /// The MQTT plane (broker, registry view) could not start.
    #[error("cannot start the MQTT broker: {0}")]
    Mqtt(#[from] ironroot_control::ControlError),
    /// A file of the data directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
