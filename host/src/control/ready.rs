//! Readying a configuration generation, the one way a start and a reload
//! both take: `[acme]` checked and its certificates' slots prepared,
//! certificate files read, listeners bound, the access log opened, pools
//! built, the generation assembled. Nothing is switched here: a failure
//! anywhere drops what was made and the caller (the start, or a reload that
//! keeps the old generation serving) reports one [`ReadyError`].

use std::net::SocketAddr;
use std::sync::Arc;

use crate::control::acme::{self, Acme, AcmeError};
use crate::control::listeners::{self, BindError, Bound};
use crate::observe::access::AccessLog;
use crate::observe::metrics::Metrics;
use crate::policy::LoadError;
use crate::state::config::{Config, ConfigError, ListenerConfig};
use crate::state::live::Generation;
use crate::state::tls::{ManagedKeys, Tls, TlsError};
use crate::upstream::pool::Pools;

/// Why a configuration could not be made ready: at start, limen does not
/// start; on a reload, the old configuration serves on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadyError {
    /// The configuration itself (a reload's file) was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policy was refused.
    #[error(transparent)]
    Policy(#[from] LoadError),
    /// A certificate, key or CA bundle was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The access log file could not be opened.
    #[error("E013 cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    /// `[acme]` cannot be used (its CA bundle, its storage).
    #[error(transparent)]
    Acme(#[from] AcmeError),
}

impl ReadyError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            ReadyError::Config(error) => error.code(),
            ReadyError::Policy(error) => error.code(),
            ReadyError::Tls(error) => error.code(),
            ReadyError::Bind(error) => error.code(),
            ReadyError::AccessLog(_) => "E013",
            ReadyError::Acme(error) => error.code(),
        }
    }
}

/// A generation made ready, not yet live.
pub(crate) struct Ready {
    pub(crate) generation: Generation,
    /// The listeners bound for it (at a reload, only the added ones), not
    /// accepting yet.
    pub(crate) bound: Vec<Bound>,
    /// The ACME slots it serves from: committed once it is live.
    pub(crate) managed: ManagedKeys,
}

/// What a reload readies against: the generation live now and the
/// listeners it keeps.
pub(crate) struct Previous<'a> {
    pub(crate) generation: &'a Generation,
    pub(crate) kept: Vec<(Arc<str>, SocketAddr)>,
}

/// Ready `config`: bind `listeners` (each with a socket per worker), and
/// build on `previous` when there is one (its pools' health, its metrics,
/// its number + 1).
pub(crate) async fn ready(
    config: &Config,
    (acme, metrics): (&Acme, &Metrics),
    (listeners, workers): (&[ListenerConfig], usize),
    previous: Option<Previous<'_>>,
) -> Result<Ready, ReadyError> {
    if let Some(settings) = config.acme.clone() {
        // Reads the CA bundle and the storage directory: off the runtime.
        // A check that did not finish (the runtime shutting down, or a bug
        // that panicked: logged) refuses nothing; it never takes the
        // control task down with it.
        match tokio::task::spawn_blocking(move || acme::check(&settings)).await {
            Ok(checked) => checked?,
            Err(e) if e.is_panic() => tracing::error!("the [acme] check panicked: {e}"),
            Err(_) => {}
        }
    }
    let managed = acme.prepare(config).await;
    let tls = load_tls(config, &managed).await?;
    let bound = listeners::bind(listeners, workers, config.limits.listen_backlog)?;
    let mut addrs = previous
        .as_ref()
        .map(|p| p.kept.clone())
        .unwrap_or_default();
    addrs.extend(bound.iter().map(Bound::addr));
    let access = open_access_log(config, metrics)
        .await
        .map_err(ReadyError::AccessLog)?;
    let own: Vec<SocketAddr> = addrs.iter().map(|(_, addr)| *addr).collect();
    let old = previous.as_ref().map(|p| p.generation);
    let pools = Pools::build(
        &config.pools,
        old.map(|g| &g.pools),
        (&own, config.limits.connect_timeout),
        metrics,
    )
    .await?;
    let number = old.map_or(1, |g| g.number + 1);
    let generation = Generation::new(config, (tls, pools), addrs, metrics.clone(), access, number);
    Ok(Ready {
        generation,
        bound,
        managed,
    })
}

/// Open the access log, if configured, off the runtime's workers (opening
/// may create a file).
async fn open_access_log(config: &Config, metrics: &Metrics) -> std::io::Result<Option<AccessLog>> {
    let Some(access) = config.access_log.clone() else {
        return Ok(None);
    };
    let dropped = metrics.access_log_dropped.clone();
    tokio::task::spawn_blocking(move || AccessLog::open(&access, dropped))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map(Some)
}

/// Read certificates and keys on a blocking thread; warn about what will
/// fail later (an empty allow-list, certificate names with no entry).
async fn load_tls(config: &Config, managed: &ManagedKeys) -> Result<Tls, TlsError> {
    if config.allow.is_empty() {
        tracing::warn!(
            "[upstreams] allow is empty: every passthrough a policy decides will be refused"
        );
    }
    let (certificates, trust) = (config.certificates.clone(), config.upstream_trust.clone());
    let managed = managed.clone();
    let tls = tokio::task::spawn_blocking(move || Tls::load(&certificates, &trust, &managed))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    for warning in tls.warnings() {
        tracing::warn!("{warning}");
    }
    for name in config.unknown_certificates() {
        tracing::warn!(
            "policy.config names certificate `{name}` with no [certificates.{name}] entry: \
             such terminate decisions will fail"
        );
    }
    Ok(tls)
}
