//! Certificates that change while limen runs (ACME): a slot per name that
//! the certificate store reads at each handshake, and the TLS-ALPN-01
//! challenge certificates limen serves while an order is pending.
//!
//! Both are written by the ACME tasks (`crate::control::acme`) and read on the
//! connection path without a lock: one atomic pointer load each. A
//! connection that already resolved its key keeps it; the next handshake
//! gets the new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::hello::Alpn;

/// RFC 8737's ALPN protocol: a hello offering it asks for a challenge.
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The live certificate of one ACME-managed name, or none yet.
#[derive(Debug, Default)]
pub(crate) struct ManagedKey {
    key: ArcSwapOption<CertifiedKey>,
    /// The leaf's `notBefore` and `notAfter` (Unix seconds), 0 while there
    /// is none.
    not_before: AtomicI64,
    not_after: AtomicI64,
}

impl ManagedKey {
    /// Put `key` (valid from `not_before` to `not_after`) live for the
    /// next handshakes.
    pub(crate) fn install(&self, key: Arc<CertifiedKey>, (not_before, not_after): (i64, i64)) {
        self.not_before.store(not_before, Ordering::Relaxed);
        self.not_after.store(not_after, Ordering::Relaxed);
        self.key.store(Some(key));
    }

    /// The live leaf's validity (`notBefore`, `notAfter`), if any.
    pub(crate) fn validity(&self) -> Option<(i64, i64)> {
        let from = self.not_before.load(Ordering::Relaxed);
        Some((from, self.not_after.load(Ordering::Relaxed))).filter(|_| self.is_ready())
    }

    /// The certificate live now.
    pub(crate) fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.key.load_full()
    }

    /// Whether a certificate has been installed.
    pub(crate) fn is_ready(&self) -> bool {
        self.key.load().is_some()
    }

    /// The live leaf's `notAfter`, if any.
    pub(crate) fn not_after(&self) -> Option<i64> {
        Some(self.not_after.load(Ordering::Relaxed)).filter(|t| *t != 0)
    }
}

/// Slots by certificate name, and the challenge table: what the ACME tasks
/// hand the certificate store of each generation.
#[derive(Debug, Clone, Default)]
pub struct ManagedKeys {
    pub(crate) keys: HashMap<Arc<str>, Arc<ManagedKey>>,
    pub(crate) challenges: Arc<Challenges>,
}

/// Challenge certificates by the DNS name they prove, each as a ready
/// server config offering only `acme-tls/1`, with the certificate entry
/// being ordered.
#[derive(Debug, Default)]
pub(crate) struct Challenges(ArcSwap<HashMap<Arc<str>, Challenge>>);

/// One pending TLS-ALPN-01 challenge.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    /// The `[certificates.NAME]` entry it is for.
    pub(crate) certificate: Arc<str>,
    pub(crate) config: Arc<ServerConfig>,
}

impl Challenges {
    /// The config answering a hello for `sni` that offers `alpn`, when it
    /// offers exactly `acme-tls/1` (RFC 8737 §3: a validation offers that
    /// one protocol) and an order for `sni` is pending. Anything else (most
    /// hellos) costs one length check.
    pub(crate) fn answer(&self, sni: Option<&str>, mut alpn: Alpn<'_>) -> Option<Challenge> {
        if alpn.len() != 1 || alpn.next() != Some(ACME_TLS_ALPN) {
            return None;
        }
        self.0.load().get(sni?).cloned()
    }

    /// Serve `key` for `name` (of `certificate`) until [`Challenges::remove`].
    pub(crate) fn insert(
        &self,
        (certificate, name): (&Arc<str>, &Arc<str>),
        key: Arc<CertifiedKey>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<(), rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Only(key)));
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        let challenge = Challenge {
            certificate: certificate.clone(),
            config: Arc::new(config),
        };
        self.0.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(name.clone(), challenge.clone());
            map
        });
        Ok(())
    }

    /// Stop serving the challenge for `name` that `certificate` put there
    /// (a task a reload replaced, finishing late, leaves its successor's).
    pub(crate) fn remove(&self, name: &str, certificate: &Arc<str>) {
        self.0.rcu(|map| {
            let mut map = HashMap::clone(map);
            if map
                .get(name)
                .is_some_and(|c| Arc::ptr_eq(&c.certificate, certificate))
            {
                map.remove(name);
            }
            map
        });
    }
}

/// One key for every hello (the challenge certificate).
#[derive(Debug)]
struct Only(Arc<CertifiedKey>);

impl ResolvesServerCert for Only {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
