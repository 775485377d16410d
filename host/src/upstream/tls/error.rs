//! Why the TLS set-up was refused.

use std::path::PathBuf;

/// A certificate, key or CA bundle that cannot be used. limen does not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("E030 cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file has no PEM object of the kind needed, or a broken one.
    #[error("E031 {path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
    /// The private key does not belong to the chain's leaf certificate.
    #[error("E032 certificates.{name}: key {key} does not match the certificate in {chain}")]
    KeyMismatch {
        /// Entry name.
        name: String,
        /// Chain file.
        chain: PathBuf,
        /// Key file.
        key: PathBuf,
    },
    /// The key's algorithm is not supported, or the key is malformed.
    #[error("E033 certificates.{name}: cannot use key {key}: {reason}")]
    Key {
        /// Entry name.
        name: String,
        /// Key file.
        key: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The upstream trust could not be built.
    #[error("E034 upstream_tls: {0}")]
    Trust(String),
}

impl TlsError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "E030",
            TlsError::Pem { .. } => "E031",
            TlsError::KeyMismatch { .. } => "E032",
            TlsError::Key { .. } => "E033",
            TlsError::Trust(_) => "E034",
        }
    }
}
