//! What can be known about `[acme]` before ordering anything: the CA bundle
//! reads, the storage directory is writable, and (only when asked, as
//! `limen check --online`) the directory answers as an ACME server.

use std::path::Path;

use instant_acme::{Account, NewAccount};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::storage::Storage;
use crate::state::config::AcmeConfig;

/// An `[acme]` block limen cannot work with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// `ca` is not a readable PEM certificate.
    #[error("E044 acme.ca {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// `storage` cannot be created or written.
    #[error("E045 acme.storage {path} is not writable: {error}")]
    Storage {
        /// The directory.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The directory did not answer as an ACME server (`--online`).
    #[error("E046 acme.directory {url}: {reason}")]
    Directory {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl AcmeError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            AcmeError::Ca { .. } => "E044",
            AcmeError::Storage { .. } => "E045",
            AcmeError::Directory { .. } => "E046",
        }
    }
}

/// Offline checks. Blocking (files).
pub fn check(config: &AcmeConfig) -> Result<(), AcmeError> {
    if let Some(ca) = &config.ca {
        ca_readable(ca)?;
    }
    Storage::new(&config.storage)
        .check_writable()
        .map_err(|error| AcmeError::Storage {
            path: config.storage.display().to_string(),
            error,
        })
}

fn ca_readable(path: &Path) -> Result<(), AcmeError> {
    let failed = |reason: String| AcmeError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    CertificateDer::from_pem_slice(&bytes)
        .map(drop)
        .map_err(|e| failed(format!("no usable CERTIFICATE: {e}")))
}

/// Ask the directory whether it knows a fresh key's account. Any ACME
/// server answers with the problem `accountDoesNotExist`, which proves the
/// URL, its TLS, nonces and signatures all work; nothing is created.
pub async fn check_online(config: &AcmeConfig) -> Result<String, AcmeError> {
    let failed = |reason: String| AcmeError::Directory {
        url: config.directory.clone(),
        reason,
    };
    let builder = match &config.ca {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    }
    .map_err(|e| failed(e.to_string()))?;
    let probe = NewAccount {
        contact: &[],
        terms_of_service_agreed: true,
        only_return_existing: true,
    };
    let asked = builder.create(&probe, config.directory.clone(), None);
    match tokio::time::timeout(std::time::Duration::from_secs(30), asked).await {
        Err(_) => Err(failed("no answer within 30s".into())),
        Ok(Ok(_)) => Ok("the directory answered (and knew a fresh key?)".into()),
        Ok(Err(instant_acme::Error::Api(problem)))
            if problem
                .r#type
                .as_deref()
                .is_some_and(|t| t.ends_with(":accountDoesNotExist")) =>
        {
            Ok("the directory answers as an ACME server".into())
        }
        Ok(Err(error)) => Err(failed(error.to_string())),
    }
}
