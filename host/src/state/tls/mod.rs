//! Everything limen needs to be a TLS endpoint for `terminate`: the named
//! certificates (server side) and the trust used when re-encrypting towards an
//! upstream (client side).
//!
//! Files are read once, when limen starts ([`Tls::load`], on a blocking
//! thread); the connection path only looks up prepared rustls configs.
//! Private keys stay here: a policy only ever sees certificate *names*.

mod managed;
mod store;
mod validity;

use std::sync::Arc;

pub use crate::upstream::tls::TlsError;
use crate::upstream::tls::UpstreamTls;
pub use managed::ManagedKeys;
pub(crate) use managed::{Challenge, Challenges, ManagedKey};
pub(crate) use store::CertStore;
pub(crate) use validity::dates;

use crate::state::config::CertificateConfig;
use crate::upstream::tls::UpstreamTrust;

/// The loaded certificate store and upstream trust.
pub struct Tls {
    pub(crate) certs: CertStore,
    pub(crate) upstream: UpstreamTls,
    warnings: Vec<String>,
}

impl Tls {
    /// Read and check every certificate and key, and the upstream trust.
    /// Blocking: call from a blocking thread.
    /// ACME-managed names read their keys from `managed` (empty slots
    /// when there is none, as in `limen check`).
    pub fn load(
        certificates: &[CertificateConfig],
        trust: &UpstreamTrust,
        managed: &ManagedKeys,
    ) -> Result<Tls, TlsError> {
        let provider = provider();
        let mut warnings = Vec::new();
        let certs = CertStore::load(certificates, (&provider, managed), &mut warnings)?;
        let upstream = UpstreamTls::load(trust, &provider, &mut warnings)?;
        Ok(Tls {
            certs,
            upstream,
            warnings,
        })
    }

    /// Things that work but deserve attention (expiry, key permissions,
    /// disabled verification). `limen run` logs each at `warn` (in
    /// `control::ready`); `limen check` prints them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The one crypto provider limen's TLS uses (ring).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
