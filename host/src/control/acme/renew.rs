//! One ACME-managed certificate's life: obtain it when there is none, renew
//! it `renew_before` its expiry (less a random jitter, so a fleet started
//! together does not renew together), and after a failure retry with
//! exponential back-off. A forced renewal (`limen acme renew`) starts an
//! attempt at once and keeps retrying until one succeeds.
//!
//! The certificate in service is never taken away: a failed renewal leaves
//! it live, and a new one replaces it in one atomic store.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::order::{self, Accounts, OrderError, blocking};
use super::storage::{Storage, Stored};
use crate::observe::metrics::{Metrics, OrderOutcome};
use crate::state::config::{AcmeConfig, AcmeNames};
use crate::state::tls::{self, Challenges, ManagedKey};

/// The first retry after a failure; each failure doubles it up to
/// [`MAX_BACKOFF`]. CAs rate-limit failed validations (Let's Encrypt: 5 per
/// name per hour), so the schedule is patient.
const FIRST_BACKOFF: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(4 * 3600);
/// A whole attempt (account, order, validation, issuance) ends after this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Sleeps are cut into pieces this long, so a wall clock that jumps
/// (suspend, NTP) is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Everything one certificate's task needs.
pub(super) struct Task {
    pub(super) certificate: Arc<str>,
    pub(super) names: AcmeNames,
    pub(super) config: AcmeConfig,
    pub(super) key: Arc<ManagedKey>,
    pub(super) challenges: Arc<Challenges>,
    pub(super) metrics: Metrics,
    pub(super) force: Arc<Force>,
    pub(super) accounts: Arc<Accounts>,
    pub(super) cancel: CancellationToken,
}

/// Forced renewals asked for (`limen renew`): a count, so one asked during
/// an attempt is served by another attempt, and the wake-up.
#[derive(Default)]
pub(super) struct Force {
    pub(super) notify: Notify,
    pub(super) requested: AtomicU64,
}

impl Force {
    pub(super) fn request(&self) {
        self.requested.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_one();
    }
}

impl Task {
    pub(super) async fn run(self) {
        let storage = Storage::new(&self.config.storage);
        let provider = tls::provider();
        let jitter = jitter(&self.certificate);
        // A certificate in service that was not issued for exactly these
        // names from this directory (names or CA changed by a reload, or no
        // certificate at all) is replaced at once; until then it serves on.
        let mut forced = !self.stored_matches(&storage).await;
        let mut failures = 0u32;
        let mut retry_at = Instant::now();
        loop {
            let due_in = match self.key.validity() {
                Some(validity) if !forced => renew_in(validity, &self.config, jitter),
                _ => Duration::ZERO,
            };
            let wait = due_in.max(retry_at.saturating_duration_since(Instant::now()));
            if !wait.is_zero() {
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = self.force.notify.notified() => {
                        // An operator asking skips the back-off.
                        (forced, retry_at) = (true, Instant::now());
                    }
                    () = tokio::time::sleep(wait.min(MAX_SLEEP)) => continue,
                }
            }
            // Requests made before this point are served by this attempt.
            let asked = self.force.requested.load(Ordering::Acquire);
            let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, self.attempt(&storage, &provider));
            let result = tokio::select! {
                () = self.cancel.cancelled() => return,
                result = attempt => result.unwrap_or_else(|_| Err(OrderError::Unusable(
                    format!("no certificate within {}s", ATTEMPT_TIMEOUT.as_secs()),
                ))),
            };
            // A reload that removed or replaced this task while it ordered:
            // its series and events are no longer its to write.
            if self.cancel.is_cancelled() {
                return;
            }
            match result {
                Ok(outcome) => {
                    failures = 0;
                    forced = self.force.requested.load(Ordering::Acquire) != asked;
                    self.metrics.acme_order(&self.certificate, outcome);
                    let (_, not_after) = self.key.validity().unwrap_or_default();
                    self.metrics
                        .set_certificate_expiry(&self.certificate, Some(not_after));
                    let names = &self.names.0;
                    let certificate = &*self.certificate;
                    match outcome {
                        OrderOutcome::Renewed => tracing::info!(
                            target: "tls_sni", certificate, ?names, not_after, "acme.renewed"
                        ),
                        _ => tracing::info!(
                            target: "tls_sni", certificate, ?names, not_after, "acme.issued"
                        ),
                    }
                }
                Err(error) => {
                    failures += 1;
                    let delay = backoff(failures, jitter);
                    retry_at = Instant::now() + delay;
                    self.metrics
                        .acme_order(&self.certificate, OrderOutcome::Failed);
                    tracing::warn!(
                        target: "tls_sni", certificate = &*self.certificate,
                        names = ?self.names.0, failures, retry_in_s = delay.as_secs(),
                        serving = self.key.is_ready(), %error, "acme.failed"
                    );
                }
            }
        }
    }

    /// Whether storage holds a certificate for exactly these names from
    /// this directory (what the slot was seeded with, if anything).
    async fn stored_matches(&self, storage: &Storage) -> bool {
        let (storage, certificate) = (storage.clone(), self.certificate.clone());
        let stored = tokio::task::spawn_blocking(move || storage.certificate(&certificate)).await;
        match stored {
            Ok(Ok(Some(stored))) => {
                self.key.is_ready()
                    && stored.directory == self.config.directory
                    && same_names(&stored.names, &self.names)
            }
            _ => false,
        }
    }

    /// One order, start to finish: the new certificate goes live, then is
    /// stored (a full disk must not throw away what the CA issued).
    async fn attempt(
        &self,
        storage: &Storage,
        provider: &Arc<CryptoProvider>,
    ) -> Result<OrderOutcome, OrderError> {
        let probe = storage.clone();
        blocking(move || probe.check_writable()).await?;
        let names = (&self.certificate, self.names.0.as_slice());
        let account = self.accounts.get(&self.config, storage).await?;
        let stored = match order::order(&account, names, &self.challenges, provider).await {
            Err(error) if order::account_gone(&error) => {
                tracing::warn!(target: "tls_sni", %error, "acme.account_gone: creating a new account");
                self.accounts.forget(&self.config, storage, &account).await;
                let account = self.accounts.get(&self.config, storage).await?;
                order::order(&account, names, &self.challenges, provider).await?
            }
            other => other?,
        };
        let stored = Stored {
            directory: self.config.directory.clone(),
            ..stored
        };
        let (key, validity) = parse(&stored, provider)?;
        let outcome = match self.key.is_ready() {
            true => OrderOutcome::Renewed,
            false => OrderOutcome::Issued,
        };
        self.key.install(key, validity);
        let (save, certificate) = (storage.clone(), self.certificate.clone());
        if let Err(error) = blocking(move || save.save_certificate(&certificate, &stored)).await {
            tracing::warn!(
                target: "tls_sni", certificate = &*self.certificate, %error,
                "acme.store_failed: serving the new certificate, but a restart will order again"
            );
        }
        Ok(outcome)
    }
}

/// Whether `stored` (as written) are `names`, in any order.
pub(super) fn same_names(stored: &[String], names: &AcmeNames) -> bool {
    let mut a: Vec<&str> = stored.iter().map(String::as_str).collect();
    let mut b: Vec<&str> = names.0.iter().map(|n| &**n).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// A stored (or just issued) certificate as rustls serves it, and its
/// leaf's validity.
pub(super) fn parse(
    stored: &Stored,
    provider: &Arc<CryptoProvider>,
) -> Result<(Arc<rustls::sign::CertifiedKey>, (i64, i64)), OrderError> {
    let unusable =
        |what: &str, e: &dyn std::fmt::Display| OrderError::Unusable(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(stored.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable("chain", &e))?;
    let leaf = chain
        .first()
        .ok_or_else(|| OrderError::Unusable("empty chain".into()))?;
    let validity = tls::dates(leaf);
    let validity = validity.ok_or_else(|| OrderError::Unusable("leaf has no dates".into()))?;
    let key = PrivateKeyDer::from_pem_slice(stored.key_pem.as_bytes())
        .map_err(|e| unusable("key", &e))?;
    Ok((order::certified(chain, key, provider)?, validity))
}

/// Time until the certificate valid `(from, to)` is due for renewal.
fn renew_in((from, to): (i64, i64), config: &AcmeConfig, jitter: f64) -> Duration {
    let lifetime = Duration::from_secs(u64::try_from(to - from).unwrap_or(0));
    let ahead = config.renew_before.ahead(lifetime);
    // Up to a tenth of the renewal window earlier, at most 12 hours.
    let spread = ahead.mul_f64(0.1).min(Duration::from_secs(12 * 3600));
    let ahead = ahead + spread.mul_f64(jitter);
    // However early `renew_before` asks, a certificate serves a tenth of
    // its life: a short-lived one never renews in a loop.
    let floor = from + (to - from) / 10;
    let due = (to - i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX)).max(floor);
    Duration::from_secs(u64::try_from(due - now()).unwrap_or(0))
}

/// The back-off after `failures` failures in a row, ±10 %.
fn backoff(failures: u32, jitter: f64) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF).mul_f64(0.9 + 0.2 * jitter)
}

/// A number in [0, 1) that differs between certificates and starts.
fn jitter(certificate: &str) -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(certificate.as_bytes());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::config::RenewBefore;

    #[test]
    fn renewal_is_due_renew_before_expiry_less_jitter() {
        let day = 86_400;
        let config = |renew_before| AcmeConfig {
            directory: "https://ca.test/dir".into(),
            contact: vec![],
            storage: "/nonexistent".into(),
            ca: None,
            renew_before,
        };
        let from = now() - 10 * day;
        let to = from + 90 * day;
        // A third of 90 days: due at day 60, 50 days from now (less the
        // second that may tick between the two clock reads).
        let third = config(RenewBefore::default());
        let days = renew_in((from, to), &third, 0.0).as_secs() as f64 / day as f64;
        assert!((49.99..=50.0).contains(&days), "{days}");
        // Jitter moves it earlier by at most 12 hours here.
        let early = renew_in((from, to), &third, 0.999).as_secs();
        let late = renew_in((from, to), &third, 0.0).as_secs();
        assert!(late - early <= 12 * 3600 && late > early);
        // Past due: at once.
        let fixed = config(RenewBefore::Time(Duration::from_secs(85 * day as u64)));
        assert_eq!(renew_in((from, to), &fixed, 0.5), Duration::ZERO);
        // renew_before longer than a fresh certificate's life: not at once
        // (and not in a loop), a tenth of its life in.
        let fresh = (now(), now() + 6 * day);
        let long = config(RenewBefore::Time(Duration::from_secs(30 * day as u64)));
        let wait = renew_in(fresh, &long, 0.9).as_secs() as i64;
        assert!((6 * day / 10 - 2..=6 * day / 10).contains(&wait), "{wait}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1, 0.5), FIRST_BACKOFF);
        assert_eq!(backoff(3, 0.5), FIRST_BACKOFF * 4);
        assert_eq!(backoff(30, 0.5), MAX_BACKOFF);
        assert!(backoff(1, 0.0) < backoff(1, 0.99));
    }
}
