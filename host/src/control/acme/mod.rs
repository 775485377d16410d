//! Certificates limen obtains and renews itself from an ACME CA, proven by
//! TLS-ALPN-01 on its own listeners.
//!
//! [`Acme`] outlives configuration generations, like the limit table: each
//! ACME-named `[certificates]` entry has a [`ManagedKey`] slot, which every
//! generation's certificate store reads, and a task (`renew.rs`) that fills
//! it. A reload is two steps: [`Acme::prepare`] hands the new generation
//! its slots (reusing the ones whose names did not change, loading stored
//! certificates for new ones) without starting anything; once that
//! generation is live, [`Acme::commit`] starts and stops tasks to match. A
//! refused reload therefore changes nothing here.
//!
//! Layout: `storage` (files), `order` (one RFC 8555 exchange), `renew`
//! (one certificate's schedule).

mod check;
mod order;
mod renew;
mod storage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::observe::metrics::Metrics;
use crate::state::config::{AcmeConfig, AcmeNames, CertificateSource, Config};
use crate::state::tls::{self, Challenges, ManagedKey, ManagedKeys};
pub use check::{AcmeError, check, check_online};
use order::Accounts;
use renew::Force;
use storage::Storage;

/// The ACME-managed certificates of a running limen.
pub(crate) struct Acme {
    challenges: Arc<Challenges>,
    /// Written by the control task only (reloads, forced renewals): never
    /// on the connection path.
    managed: Mutex<HashMap<Arc<str>, Managed>>,
    metrics: Metrics,
    stop: CancellationToken,
    /// One account per directory, shared by the tasks.
    accounts: Arc<Accounts>,
}

struct Managed {
    names: AcmeNames,
    config: AcmeConfig,
    key: Arc<ManagedKey>,
    /// `None` between `prepare` and `commit`.
    task: Option<Running>,
}

struct Running {
    cancel: CancellationToken,
    force: Arc<Force>,
}

/// Why a forced renewal was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenewError {
    /// No `[certificates.NAME]` with `acme = [...]` by that name.
    #[error("E043 no ACME certificate named `{0}` (see [certificates.NAME] acme = [...])")]
    NotManaged(String),
}

impl RenewError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        "E043"
    }
}

impl Acme {
    pub(crate) fn new(metrics: Metrics) -> Acme {
        Acme {
            challenges: Arc::default(),
            managed: Mutex::default(),
            metrics,
            stop: CancellationToken::new(),
            accounts: Arc::default(),
        }
    }

    /// The slots `config`'s ACME entries read from. An entry whose names are
    /// unchanged keeps its slot (and certificate); a new one starts with the
    /// stored certificate, when one was issued for exactly its names.
    pub(crate) async fn prepare(&self, config: &Config) -> ManagedKeys {
        let mut keys = HashMap::new();
        for (certificate, names) in acme_entries(config) {
            let (kept, previous) = {
                let managed = self.lock();
                let entry = managed.get(&certificate);
                let same =
                    entry.filter(|m| m.names == names && config.acme.as_ref() == Some(&m.config));
                let previous = entry.and_then(|m| m.key.current().zip(m.key.validity()));
                (same.map(|m| m.key.clone()), previous)
            };
            let key = match (kept, &config.acme) {
                (Some(key), _) => key,
                (None, Some(acme)) => {
                    let key = stored(acme, &certificate, &names).await;
                    // Names or CA changed: the old certificate serves its
                    // names until the new one is issued (the task orders at
                    // once), rather than nothing.
                    if let (false, Some((old, validity))) = (key.is_ready(), previous) {
                        key.install(old, validity);
                    }
                    key
                }
                (None, None) => Arc::default(),
            };
            keys.insert(certificate, key);
        }
        ManagedKeys {
            keys,
            challenges: self.challenges.clone(),
        }
    }

    /// Make the tasks match `config`, whose generation (built with `keys`
    /// from [`Acme::prepare`]) is now live.
    pub(crate) fn commit(&self, config: &Config, keys: &ManagedKeys) {
        let mut managed = self.lock();
        let wanted: HashMap<Arc<str>, AcmeNames> = acme_entries(config).collect();
        managed.retain(|certificate, entry| {
            let keep = wanted.get(certificate) == Some(&entry.names)
                && config.acme.as_ref() == Some(&entry.config);
            if !keep && let Some(task) = &entry.task {
                task.cancel.cancel();
            }
            keep
        });
        let Some(acme) = &config.acme else { return };
        for (certificate, names) in wanted {
            if managed.contains_key(&certificate) {
                continue;
            }
            let key = keys.keys.get(&certificate).cloned().unwrap_or_default();
            let running = Running {
                cancel: self.stop.child_token(),
                force: Arc::default(),
            };
            let task = renew::Task {
                certificate: certificate.clone(),
                names: names.clone(),
                config: acme.clone(),
                key: key.clone(),
                challenges: self.challenges.clone(),
                metrics: self.metrics.clone(),
                force: running.force.clone(),
                accounts: self.accounts.clone(),
                cancel: running.cancel.clone(),
            };
            // Watched: a task that panicked would stop renewing in silence.
            let watched = tokio::spawn(task.run());
            let name = certificate.clone();
            tokio::spawn(async move {
                if let Err(error) = watched.await
                    && error.is_panic()
                {
                    tracing::error!(target: "tls_sni", certificate = &*name, "acme task panicked: renewals stopped");
                }
            });
            let entry = Managed {
                names,
                config: acme.clone(),
                key,
                task: Some(running),
            };
            managed.insert(certificate, entry);
        }
    }

    /// Renew `certificate` now, whatever its expiry (a key compromise, a
    /// changed contact...). The outcome is an event and a metric.
    pub(crate) fn renew(&self, certificate: &str) -> Result<(), RenewError> {
        let managed = self.lock();
        let running = managed.get(certificate).and_then(|m| m.task.as_ref());
        let running = running.ok_or_else(|| RenewError::NotManaged(certificate.to_owned()))?;
        // Counted: asked mid-attempt, it is served by the next attempt.
        running.force.request();
        Ok(())
    }

    /// Stop every task (shutdown). Challenges being served are dropped with them.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Managed>> {
        // Poisoned only if a panic happened mid-update of a plain map: it is whole.
        self.managed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `config`'s ACME entries: certificate name and names.
fn acme_entries(config: &Config) -> impl Iterator<Item = (Arc<str>, AcmeNames)> + '_ {
    config.certificates.iter().filter_map(|c| match &c.source {
        CertificateSource::Acme(names) => Some((c.name.clone(), names.clone())),
        CertificateSource::Files(_) => None,
    })
}

/// A slot holding the certificate stored for `certificate`, if it was
/// issued for exactly `names` and can be used; else an empty one.
async fn stored(acme: &AcmeConfig, certificate: &Arc<str>, names: &AcmeNames) -> Arc<ManagedKey> {
    let key = Arc::new(ManagedKey::default());
    let (storage, name) = (Storage::new(&acme.storage), certificate.clone());
    let found = match tokio::task::spawn_blocking(move || storage.certificate(&name)).await {
        Ok(found) => found,
        Err(error) => Err(std::io::Error::other(error.to_string())),
    };
    let fits =
        |s: &storage::Stored| renew::same_names(&s.names, names) && s.directory == acme.directory;
    match found {
        Ok(Some(stored)) if fits(&stored) => match renew::parse(&stored, &tls::provider()) {
            Ok((certified, validity)) => {
                key.install(certified, validity);
                tracing::info!(
                    target: "tls_sni", certificate = &**certificate, not_after = validity.1,
                    "acme.loaded: stored certificate reused"
                );
            }
            Err(error) => tracing::warn!(
                target: "tls_sni", certificate = &**certificate, %error,
                "acme.stored_unusable: ordering a new one"
            ),
        },
        Ok(Some(_)) => tracing::info!(
            target: "tls_sni", certificate = &**certificate,
            "acme.names_changed: ordering a new certificate (names or directory changed)"
        ),
        Ok(None) => {}
        Err(error) => tracing::warn!(
            target: "tls_sni", certificate = &**certificate, %error,
            "acme.storage_unreadable: ordering a new certificate"
        ),
    }
    key
}
