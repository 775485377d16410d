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

use super::managed::{Challenge, Challenges, ManagedKey, ManagedKeys};
use super::validity;
use crate::hello::Alpn;
use crate::plan::{Certificates, Refusal};
use crate::state::config::{CertificateConfig, CertificateSource, KeyPairPaths};
use crate::upstream::tls::{TlsError, pem};

/// A policy's ALPN lists are few; a cap keeps a policy that invents new ones
/// per connection from growing the cache.
const MAX_ALPN_VARIANTS: usize = 16;

/// Certificates by name.
pub(crate) struct CertStore {
    entries: HashMap<Arc<str>, Entry>,
    /// TLS-ALPN-01 challenges pending (shared with the ACME tasks).
    challenges: Arc<Challenges>,
}

struct Entry {
    /// No ALPN.
    base: Arc<ServerConfig>,
    by_alpn: RwLock<HashMap<Vec<Vec<u8>>, Arc<ServerConfig>>>,
    keys: Arc<ChooseKey>,
}

/// Why a name has no server config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// No `[certificates.NAME]` entry.
    Unknown,
    /// An ACME entry whose first certificate has not been issued yet.
    NotIssued,
}

impl CertStore {
    pub(super) fn load(
        certificates: &[CertificateConfig],
        (provider, managed): (&Arc<CryptoProvider>, &ManagedKeys),
        warnings: &mut Vec<String>,
    ) -> Result<CertStore, TlsError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut entries = HashMap::new();
        for entry in certificates {
            let name = entry.name.as_ref();
            let keys = match &entry.source {
                CertificateSource::Files(pairs) => {
                    let mut keys = Vec::new();
                    for pair in pairs {
                        keys.push(Arc::new(load_pair(name, pair, provider, now, warnings)?));
                    }
                    ChooseKey::Files(keys)
                }
                // `limen check` has no ACME task: an empty slot stands in.
                CertificateSource::Acme(_) => {
                    ChooseKey::Managed(managed.keys.get(name).cloned().unwrap_or_default())
                }
            };
            let keys = Arc::new(keys);
            let base = server_config(provider, keys.clone())?;
            entries.insert(
                entry.name.clone(),
                Entry {
                    base: Arc::new(base),
                    by_alpn: RwLock::default(),
                    keys,
                },
            );
        }
        Ok(CertStore {
            entries,
            challenges: managed.challenges.clone(),
        })
    }

    /// The server config for `name` offering `alpn`, or why there is none.
    pub(crate) fn server_config(
        &self,
        name: &str,
        alpn: &[Vec<u8>],
    ) -> Result<Arc<ServerConfig>, Missing> {
        let entry = self.entries.get(name).ok_or(Missing::Unknown)?;
        if let ChooseKey::Managed(slot) = &*entry.keys
            && !slot.is_ready()
        {
            return Err(Missing::NotIssued);
        }
        if alpn.is_empty() {
            return Ok(entry.base.clone());
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
            return Ok(config);
        }
        let mut config = ServerConfig::clone(&entry.base);
        config.alpn_protocols = alpn.to_vec();
        let config = Arc::new(config);
        let mut map = entry.by_alpn.write().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_ALPN_VARIANTS {
            map.insert(alpn.to_vec(), config.clone());
        }
        Ok(config)
    }

    /// The TLS-ALPN-01 challenge config for a hello, if it asks for one
    /// limen is answering (see [`Challenges::answer`]).
    pub(crate) fn challenge(&self, sni: Option<&str>, alpn: Alpn<'_>) -> Option<Challenge> {
        self.challenges.answer(sni, alpn)
    }

    /// Each certificate's name and the earliest `notAfter` (Unix seconds)
    /// among its keys; none for an ACME name not issued yet.
    pub(crate) fn expiries(&self) -> impl Iterator<Item = (&Arc<str>, Option<i64>)> {
        self.summary().map(|(name, expiry, _)| (name, expiry))
    }

    /// [`CertStore::expiries`], and whether each is ACME-managed.
    pub(crate) fn summary(&self) -> impl Iterator<Item = (&Arc<str>, Option<i64>, bool)> {
        self.entries.iter().map(|(name, entry)| {
            let expiry = match &*entry.keys {
                ChooseKey::Files(keys) => keys
                    .iter()
                    .filter_map(|k| k.end_entity_cert().ok())
                    .filter_map(|leaf| validity::dates(leaf).map(|(_, to)| to))
                    .min(),
                ChooseKey::Managed(slot) => slot.not_after(),
            };
            (name, expiry, matches!(&*entry.keys, ChooseKey::Managed(_)))
        })
    }
}

/// Read one chain and key pair and check they belong together.
fn load_pair(
    name: &str,
    pair: &KeyPairPaths,
    provider: &Arc<CryptoProvider>,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<CertifiedKey, TlsError> {
    let chain = pem::chain(&pair.chain)?;
    let key = pem::key(&pair.key, warnings)?;
    if let Some(warning) = validity::check(name, &chain[0], now) {
        warnings.push(warning);
    }
    let signing = provider
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
    Ok(certified)
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
/// client can verify, in the order the config lists them. An ACME name has
/// one key, read from its slot at each handshake.
#[derive(Debug)]
enum ChooseKey {
    Files(Vec<Arc<CertifiedKey>>),
    Managed(Arc<ManagedKey>),
}

impl ResolvesServerCert for ChooseKey {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self {
            ChooseKey::Files(keys) => {
                let schemes = hello.signature_schemes();
                keys.iter()
                    .find(|k| k.key.choose_scheme(schemes).is_some())
                    // None fits: rustls then fails the handshake with the right alert.
                    .or_else(|| keys.first())
                    .cloned()
            }
            ChooseKey::Managed(slot) => slot.current(),
        }
    }
}

impl Certificates for CertStore {
    type Config = Arc<ServerConfig>;
    fn lookup(&self, name: &str, alpn: &[Vec<u8>]) -> Result<Arc<ServerConfig>, Refusal> {
        self.server_config(name, alpn)
            .map_err(|missing| match missing {
                Missing::Unknown => Refusal::UnknownCertificate(name.to_owned()),
                Missing::NotIssued => Refusal::NotIssued(name.to_owned()),
            })
    }
}
