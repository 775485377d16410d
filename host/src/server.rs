//! Assembling limen: load the policy, bind the listeners, run until told to
//! stop, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AllowList, Config, FailMode, Limits};
use crate::listener::{self, Serve};
use crate::metrics::Metrics;
use crate::policy::{Policy, PolicyEngine, PolicyError};
use crate::tls::{Tls, TlsError};

/// State every connection reads; immutable while it runs.
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) allow: AllowList,
    pub(crate) on_error: FailMode,
    pub(crate) policy: Policy,
    pub(crate) metrics: Metrics,
    /// Where limen listens: never an upstream.
    pub(crate) own: Vec<SocketAddr>,
    /// Certificates for `terminate`, trust for re-encryption.
    pub(crate) tls: Tls,
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
}

/// A bound, ready limen.
pub struct Server {
    listeners: Vec<(Arc<str>, TcpListener)>,
    shared: Arc<Shared>,
    _engine: PolicyEngine,
}

impl Server {
    /// Load the policy (compiling it on a blocking thread) and bind every listener.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        if config.allow.is_empty() {
            tracing::warn!(
                "[upstreams] allow is empty: every passthrough a policy decides will be refused"
            );
        }
        let (certificates, trust) = (config.certificates.clone(), config.upstream_trust.clone());
        let tls = tokio::task::spawn_blocking(move || Tls::load(&certificates, &trust))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        for name in config.unknown_certificates() {
            tracing::warn!(
                "policy.config names certificate `{name}` with no [certificates.{name}] entry: \
                 such terminate decisions will fail"
            );
        }
        let engine = PolicyEngine::new()?;
        let policy = Policy::load(&engine, &config.policy).await?;
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let listener = TcpListener::bind(l.bind)
                .await
                .map_err(|error| StartError::Bind {
                    name: l.name.to_string(),
                    addr: l.bind,
                    error,
                })?;
            listeners.push((l.name.clone(), listener));
        }
        let own = listeners
            .iter()
            .filter_map(|(_, l)| l.local_addr().ok())
            .collect();
        let shared = Shared {
            limits: config.limits,
            allow: config.allow,
            on_error: config.policy.on_error,
            policy,
            metrics: Metrics::new(),
            own,
            tls,
        };
        Ok(Server {
            listeners,
            shared: Arc::new(shared),
            _engine: engine,
        })
    }

    /// Each listener's name and bound address (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(Arc<str>, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(name, l)| Some((name.clone(), l.local_addr().ok()?)))
            .collect()
    }

    /// The metrics this server counts into.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// Serve until `shutdown` resolves, then stop accepting and give open
    /// connections `limits.shutdown_grace` to finish before closing them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let grace = self.shared.limits.shutdown_grace;
        let serve = Arc::new(Serve {
            permits: Arc::new(Semaphore::new(self.shared.limits.max_connections)),
            shared: self.shared,
            stop: CancellationToken::new(),
            force_close: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let accept_loops = TaskTracker::new();
        for (name, listener) in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(listener = %name, %addr, "listening");
            }
            accept_loops.spawn(listener::run(name, listener, serve.clone()));
        }
        accept_loops.close();
        shutdown.await;
        tracing::info!("shutting down: no new connections, {grace:?} grace for open ones");
        serve.stop.cancel();
        accept_loops.wait().await;
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
        tracing::info!("stopped");
    }
}
