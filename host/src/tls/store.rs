//! Named certificates and the rustls server configs built from them.
//!
//! A config is built once per name at start. ALPN is part of a rustls
//! `ServerConfig` but comes from each decision, so variants per ALPN list are
//! built on first use and kept (a handful per name in practice; past
//! [`MAX_ALPN_VARIANTS`] they are built per connection rather than grow).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{TlsError, files, validity};
use crate::config::CertificateConfig;

/// A policy's ALPN lists are few; a cap keeps a policy that invents new ones
/// per connection from growing the cache.
const MAX_ALPN_VARIANTS: usize = 16;

/// Certificates by name.
pub(crate) struct CertStore {
    entries: HashMap<Arc<str>, Entry>,
}

struct Entry {
    /// No ALPN.
    base: Arc<ServerConfig>,
    by_alpn: RwLock<HashMap<Vec<Vec<u8>>, Arc<ServerConfig>>>,
}

impl CertStore {
    pub(super) fn load(
        certificates: &[CertificateConfig],
        provider: &Arc<CryptoProvider>,
        warnings: &mut Vec<String>,
    ) -> Result<CertStore, TlsError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut entries = HashMap::new();
        for entry in certificates {
            let name = entry.name.as_ref();
            let mut keys = Vec::new();
            for pair in &entry.pairs {
                let chain = files::chain(&pair.chain)?;
                let key = files::key(&pair.key, warnings)?;
                if let Some(warning) = validity::check(name, &chain[0], now) {
                    warnings.push(warning);
                }
                let signing =
                    provider
                        .key_provider
                        .load_private_key(key)
                        .map_err(|e| TlsError::Key {
                            name: name.to_owned(),
                            key: pair.key.clone(),
                            reason: e.to_string(),
                        })?;
                let certified = CertifiedKey::new(chain, signing);
                if certified.keys_match().is_err() {
                    return Err(TlsError::KeyMismatch {
                        name: name.to_owned(),
                        chain: pair.chain.clone(),
                        key: pair.key.clone(),
                    });
                }
                keys.push(Arc::new(certified));
            }
            let base = server_config(provider, Arc::new(ChooseKey(keys)))?;
            entries.insert(
                entry.name.clone(),
                Entry {
                    base: Arc::new(base),
                    by_alpn: RwLock::default(),
                },
            );
        }
        Ok(CertStore { entries })
    }

    /// The server config for `name` offering `alpn`, or `None` for an unknown name.
    pub(crate) fn server_config(&self, name: &str, alpn: &[Vec<u8>]) -> Option<Arc<ServerConfig>> {
        let entry = self.entries.get(name)?;
        if alpn.is_empty() {
            return Some(entry.base.clone());
        }
        // A poisoned lock only means another connection panicked mid-insert;
        // the map itself is still whole.
        let cached = entry
            .by_alpn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(alpn)
            .cloned();
        if let Some(config) = cached {
            return Some(config);
        }
        let mut config = ServerConfig::clone(&entry.base);
        config.alpn_protocols = alpn.to_vec();
        let config = Arc::new(config);
        let mut map = entry.by_alpn.write().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_ALPN_VARIANTS {
            map.insert(alpn.to_vec(), config.clone());
        }
        Some(config)
    }
}

/// TLS 1.2 and 1.3 with the provider's default (AEAD-only, forward-secret)
/// suites; no client certificates.
fn server_config(
    provider: &Arc<CryptoProvider>,
    keys: Arc<ChooseKey>,
) -> Result<ServerConfig, TlsError> {
    Ok(ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Trust(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(keys))
}

/// Several keys under one name (ECDSA and RSA): serve the first one the
/// client can verify, in the order the config lists them.
#[derive(Debug)]
struct ChooseKey(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for ChooseKey {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.0
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            // None fits: rustls then fails the handshake with the right alert.
            .or_else(|| self.0.first())
            .cloned()
    }
}
