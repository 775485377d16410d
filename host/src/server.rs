//! Assembling limen: load the policy, bind the listeners and the admin
//! endpoint, run until told to stop, then drain.
//!
//! What connections read lives in [`Live`]: one atomically swapped pointer
//! to a [`Snapshot`], the configuration generation ([`Shared`]) and the
//! policy live with it. Each connection takes it at accept; `control`
//! replaces it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::AccessLog;
use crate::config::{AllowList, Config, FailMode, Limits};
use crate::control::{Control, ControlHandle, admin, listeners};
use crate::listener::Serve;
use crate::metrics::{Metrics, endpoint};
use crate::policy::{Module, Policy, PolicyEngine, PolicyError};
use crate::tls::{Tls, TlsError};

/// One configuration generation: what a connection reads besides the
/// policy. Immutable; a reload builds a new one.
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) allow: AllowList,
    pub(crate) on_error: FailMode,
    pub(crate) metrics: Metrics,
    /// Where limen listens: never an upstream.
    pub(crate) own: Vec<SocketAddr>,
    /// Listener names and bound addresses.
    pub(crate) listeners: Vec<(Arc<str>, SocketAddr)>,
    /// Certificates for `terminate`, trust for re-encryption.
    pub(crate) tls: Tls,
    /// 1 at start, +1 per applied reload.
    pub(crate) generation: u64,
    /// This generation's access log, if on.
    pub(crate) access: Option<AccessLog>,
}

impl Shared {
    pub(crate) fn new(
        config: &Config,
        tls: Tls,
        listeners: Vec<(Arc<str>, SocketAddr)>,
        metrics: Metrics,
        access: Option<AccessLog>,
        generation: u64,
    ) -> Shared {
        Shared {
            limits: config.limits.clone(),
            allow: config.allow.clone(),
            on_error: config.policy.on_error.clone(),
            metrics,
            own: listeners.iter().map(|(_, addr)| *addr).collect(),
            listeners,
            tls,
            generation,
            access,
        }
    }
}

/// A configuration generation and the policy live with it.
pub(crate) struct Snapshot {
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: Arc<Policy>,
}

/// What new connections get: one pointer, swapped whole and read once per
/// accept, so no connection pairs one generation with another's policy
/// (a reload that renames a certificate and the policy naming it changes
/// both at once). Only the control task stores into it.
pub(crate) struct Live(ArcSwap<Snapshot>);

impl Live {
    pub(crate) fn new(shared: Shared, policy: Policy) -> Live {
        Live(ArcSwap::from_pointee(Snapshot {
            shared: Arc::new(shared),
            policy: Arc::new(policy),
        }))
    }

    /// The current snapshot.
    pub(crate) fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.load().shared.clone()
    }

    pub(crate) fn policy(&self) -> Arc<Policy> {
        self.load().policy.clone()
    }

    /// Replace both at once.
    pub(crate) fn store(&self, shared: Arc<Shared>, policy: Arc<Policy>) {
        self.0.store(Arc::new(Snapshot { shared, policy }));
    }
}

/// Why limen could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The policy was refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A certificate, key or CA bundle was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not bind.
    #[error("E010 cannot listen on {addr} ({name}): {error}")]
    Bind {
        /// Listener name.
        name: String,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The metrics endpoint could not bind.
    #[error("E012 cannot serve metrics on {addr}: {error}")]
    Metrics {
        /// Its address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The access log file could not be opened.
    #[error("E013 cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    /// The admin endpoint could not be opened, or its token read.
    #[error("E011 admin endpoint {endpoint}: {reason}")]
    Admin {
        /// The socket path or address.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

/// A bound, ready limen.
pub struct Server {
    serve: Arc<Serve>,
    control: Control,
    admin: Option<admin::Endpoint>,
    metrics: Option<TcpListener>,
}

impl Server {
    /// Load certificates and the policy (compiling it on a blocking thread,
    /// or loading it from the cache), bind every listener and the admin
    /// endpoint.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let tls = load_tls(&config).await?;
        let engine = PolicyEngine::new()?.with_cache(config.policy.cache.as_deref());
        let module = Module::read(&config.policy.module).await?;
        let (policy, report) = Policy::prepare(&engine, &config.policy, &module).await?;
        tracing::info!(
            version = %policy.version(), compiled_from = report.source.name(),
            compile_ms = report.compile.as_millis() as u64, init_ms = report.init.as_millis() as u64,
            samples = report.samples, module = %config.policy.module.display(), "policy live"
        );
        let bound = listeners::bind(&config.listeners).await?;
        let admin = match &config.admin {
            Some(admin) => Some(admin::Endpoint::open(admin).await?),
            None => None,
        };
        let scrape = match config.metrics.bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|error| StartError::Metrics { addr, error })?,
            ),
            None => None,
        };
        let addrs = bound.iter().map(listeners::Bound::addr).collect();
        let metrics = Metrics::with_upstream_labels(config.metrics.upstream_labels);
        let access = open_access_log(&config, &metrics).await?;
        let shared = Shared::new(&config, tls, addrs, metrics, access, 1);
        shared.metrics.set_policy_version(&policy.version().id);
        let serve = Arc::new(Serve {
            live: Live::new(shared, policy),
            permits: Arc::new(Semaphore::new(config.limits.max_connections)),
            stop: CancellationToken::new(),
            force_close: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let control = Control::new(engine, config, serve.clone(), bound);
        Ok(Server {
            serve,
            control,
            admin,
            metrics: scrape,
        })
    }

    /// Each listener's name and bound address (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(Arc<str>, SocketAddr)> {
        self.serve.live.shared().listeners.clone()
    }

    /// Where `/metrics` is served, if `[metrics]` is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The metrics this server counts into.
    pub fn metrics(&self) -> Metrics {
        self.serve.live.shared().metrics.clone()
    }

    /// A handle to reload the configuration or swap the policy while it runs.
    pub fn handle(&self) -> ControlHandle {
        self.control.handle()
    }

    /// Serve until `shutdown` resolves, then stop accepting and give open
    /// connections `limits.shutdown_grace` to finish before closing them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let handle = self.control.handle();
        let serve = self.serve;
        let control = tokio::spawn(self.control.run());
        let admin = self
            .admin
            .map(|endpoint| tokio::spawn(endpoint.serve(handle, serve.clone())));
        if let Some(listener) = self.metrics {
            let metrics = serve.live.shared().metrics.clone();
            tokio::spawn(endpoint::serve(listener, metrics, serve.stop.clone()));
        }
        shutdown.await;
        let grace = serve.live.shared().limits.shutdown_grace;
        tracing::info!("shutting down: no new connections, {grace:?} grace for open ones");
        serve.stop.cancel();
        // The control task stops the accept loops and waits for them.
        let _ = control.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        serve.tracker.close();
        if tokio::time::timeout(grace, serve.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = serve.tracker.len(),
                "grace period over, closing open connections"
            );
            serve.force_close.cancel();
            serve.tracker.wait().await;
        }
        // Every connection has queued its line: let the writer finish them.
        if let Some(access) = &serve.live.shared().access {
            access.close().await;
        }
        tracing::info!("stopped");
    }
}

/// Open the access log, if configured, off the runtime's workers (opening
/// may create a file).
pub(crate) async fn open_access_log(
    config: &Config,
    metrics: &Metrics,
) -> Result<Option<AccessLog>, StartError> {
    let Some(access) = config.access_log.clone() else {
        return Ok(None);
    };
    let dropped = metrics.access_log_dropped.clone();
    tokio::task::spawn_blocking(move || AccessLog::open(&access, dropped))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map(Some)
        .map_err(StartError::AccessLog)
}

/// Read certificates and keys on a blocking thread; warn about what will
/// fail later (an empty allow-list, certificate names with no entry).
pub(crate) async fn load_tls(config: &Config) -> Result<Tls, TlsError> {
    if config.allow.is_empty() {
        tracing::warn!(
            "[upstreams] allow is empty: every passthrough a policy decides will be refused"
        );
    }
    let (certificates, trust) = (config.certificates.clone(), config.upstream_trust.clone());
    let tls = tokio::task::spawn_blocking(move || Tls::load(&certificates, &trust))
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
