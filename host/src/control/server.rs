//! Assembling limen: load the policy, ready the first generation
//! (`ready`), open the admin, metrics and status endpoints, run until told to stop,
//! then drain. This module only assembles: the live state is
//! `state::live`'s, the accept loops `path::accept`'s, changes the control
//! task's (`control/mod.rs`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control::acme::Acme;
use crate::control::admin::{self, AdminError};
use crate::control::fleet::{self, Seen, SourceError, Start};
use crate::control::history::History;
use crate::control::memory;
use crate::control::ready::{ReadyError, ready};
use crate::control::running::Running;
use crate::control::status;
use crate::control::{Control, ControlHandle};
use crate::control::{activation, endpoints};
use crate::observe::metrics::Metrics;
use crate::observe::metrics::endpoint::{self, Routes, StatusPage};
use crate::path::accept::Serve;
use crate::path::worker::Workers;
use crate::policy::limit_table::LimitTable;
use crate::policy::{LoadError, Module, Policy, PolicyEngine};
use crate::state::config::Config;
use crate::state::config::SourceConfig;
use crate::state::live::Live;

/// Why limen could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration could not be made ready (policy, certificates,
    /// listeners, access log, `[acme]`): the same refusals as a reload's.
    #[error(transparent)]
    Ready(#[from] ReadyError),
    /// The metrics or the status endpoint could not bind.
    #[error("E012 cannot serve {serving} on {addr}: {error}")]
    Metrics {
        /// What it was to serve: `metrics`, `the status page` or both.
        serving: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The admin endpoint could not be opened, or its token read.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The policy could not be had from `[source.etcd]` (nor `state_dir`).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A worker thread or its runtime could not be started.
    #[error("E014 cannot start the workers: {0}")]
    Workers(std::io::Error),
}

impl StartError {
    /// The code that starts the message (`E010`, `P004`...).
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Ready(error) => error.code(),
            StartError::Metrics { .. } => "E012",
            StartError::Admin(error) => error.code(),
            StartError::Workers(_) => "E014",
            StartError::Source(error) => error.code(),
        }
    }
}

impl From<LoadError> for StartError {
    fn from(error: LoadError) -> StartError {
        StartError::Ready(error.into())
    }
}

/// A bound, ready limen.
pub struct Server {
    running: Arc<Running>,
    control: Control,
    admin: Option<admin::Endpoint>,
    /// `[metrics]` and `[status]`: one listener each, or one for both.
    http: Vec<endpoints::HttpListener>,
    /// `[source.etcd]` and the live record limen started with.
    followed: Option<(SourceConfig, Seen)>,
}

impl Server {
    /// Load certificates and the policy (compiling it on a blocking thread,
    /// or loading it from the cache), bind every listener and the admin
    /// endpoint.
    pub async fn bind(mut config: Config) -> Result<Server, StartError> {
        crate::control::upgrade::remember_start();
        // A fleet's policy: from etcd, or the last good copy in state_dir.
        let followed = match config.source.clone() {
            Some(source) => Some((source, fleet::bootstrap(&mut config).await?)),
            None => None,
        };
        let metrics = Metrics::with_upstream_labels(config.metrics.upstream_labels);
        // The engine keeps the limits policies use: it outlives swaps and reloads.
        let limit_table = Arc::new(LimitTable::new(metrics.limit_counters()));
        let engine = PolicyEngine::new()?
            .with_cache(config.policy.cache.as_deref())
            .with_limit_table(limit_table);
        let (policy, report, followed) = match followed {
            None => {
                let module = Module::read(&config.policy.module).await?;
                let (policy, report) = Policy::prepare(&engine, &config.policy, &module).await?;
                (policy, report, None)
            }
            Some((source, start)) => {
                let (policy, report, seen) =
                    from_source(&engine, &mut config, &source, start).await?;
                (policy, report, Some((source, seen)))
            }
        };
        tracing::info!(
            version = %policy.version(), compiled_from = report.compiled_from.name(),
            compile_ms = report.compile.as_millis() as u64, init_ms = report.init.as_millis() as u64,
            samples = report.samples, module = %config.policy.module.display(), "policy live"
        );
        let workers = Workers::start(config.workers).map_err(StartError::Workers)?;
        // Stored ACME certificates are loaded before anything is served, so
        // a restart serves them from its first connection.
        let acme = Acme::new(metrics.clone());
        let listening = (config.listeners.as_slice(), workers.count());
        let ready = ready(&config, (&acme, &metrics), listening, None).await?;
        // etcd's policy goes live with this configuration: the last good copy now.
        if let Some((
            source,
            Seen {
                live: Some(live),
                refusal: None,
            },
        )) = &followed
        {
            fleet::started(source, live).await;
        }
        let admin = match &config.admin {
            Some(admin) => Some(admin::Endpoint::open(admin).await?),
            None => None,
        };
        let http = endpoints::bind_http(&config)
            .await
            .map_err(|(serving, addr, error)| StartError::Metrics {
                serving,
                addr,
                error,
            })?;
        let generation = ready.generation;
        generation
            .metrics
            .policy_live(&policy.version().id, policy.routes());
        generation.publish_expiries();
        let serve = Arc::new(Serve {
            live: Live::new(generation, policy),
            permits: Arc::new(Semaphore::new(config.limits.max_connections)),
            stop: CancellationToken::new(),
            force_close: CancellationToken::new(),
            handed_over: CancellationToken::new(),
            tracker: TaskTracker::new(),
            workers,
        });
        activation::close_untaken();
        let endpoints = endpoints::kept(admin.as_ref(), &http).map_err(StartError::Workers)?;
        let running = Arc::new(Running {
            serve,
            history: History::default(),
            acme,
            endpoints,
            rolled_back: std::sync::Mutex::new(None),
        });
        // Orders start now; their validation connections wait in the
        // listeners' backlog until `run` accepts.
        running.acme.commit(&config, &ready.managed);
        let control = Control::new(engine, config, running.clone(), ready.bound);
        Ok(Server {
            running,
            control,
            admin,
            http,
            followed,
        })
    }

    /// Each listener's name and bound address (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(Arc<str>, SocketAddr)> {
        self.running.serve.live.generation().listeners.clone()
    }

    /// What a process started by `limen upgrade` tells the old one.
    pub fn ready(&self) -> crate::control::handover::Ready {
        crate::control::handover::Ready {
            pid: std::process::id(),
            version: self.running.serve.live.policy().version().to_string(),
            binary: crate::control::binary_version(),
        }
    }

    /// Where `/metrics` is served, if `[metrics]` is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let served = self.http.iter().find(|h| h.metrics);
        served.and_then(|h| h.listener.local_addr().ok())
    }

    /// Where `/status` is served, if `[status]` is configured (the metrics
    /// address when the two share a bind).
    pub fn status_addr(&self) -> Option<SocketAddr> {
        let served = self.http.iter().find(|h| h.status);
        served.and_then(|h| h.listener.local_addr().ok())
    }

    /// The metrics this server counts into.
    pub fn metrics(&self) -> Metrics {
        self.running.serve.live.generation().metrics.clone()
    }

    /// A handle to reload the configuration or swap the policy while it runs.
    pub fn handle(&self) -> ControlHandle {
        self.control.handle()
    }

    /// Serve until `shutdown` resolves, then stop accepting and give open
    /// connections `limits.shutdown_grace` to finish before closing them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let handle = self.control.handle();
        let running = self.running;
        let serve = running.serve.clone();
        let _abandoned = Abandoned(running.clone());
        let control = tokio::spawn(self.control.run());
        let following = self.followed.map(|(source, seen)| {
            let (handle, running) = (handle.clone(), running.clone());
            let stop = serve.stop.clone();
            tokio::spawn(fleet::follow(source, (handle, running), seen, stop))
        });
        let admin = self
            .admin
            .map(|endpoint| tokio::spawn(endpoint.serve(handle, running.clone())));
        let metrics = serve.live.generation().metrics.clone();
        tokio::spawn(memory::give_back(
            serve.tracker.clone(),
            serve.stop.clone(),
            metrics.clone(),
        ));
        // The status page's rates are sampled only where it is served.
        let page = self.http.iter().any(|h| h.status).then(|| {
            let (page, rates) = (running.clone(), Arc::new(status::Rates::default()));
            let sampled = (rates.clone(), metrics.clone(), serve.stop.clone());
            tokio::spawn(async move { sampled.0.follow(sampled.1, sampled.2).await });
            let page: StatusPage =
                Arc::new(move |json| status::render(&page.serve.live, &page.history, &rates, json));
            page
        });
        for http in self.http {
            let routes = Routes {
                metrics: http.metrics.then(|| metrics.clone()),
                status: page.clone().filter(|_| http.status),
            };
            tokio::spawn(endpoint::serve(http.listener, routes, serve.stop.clone()));
        }
        // A new process that took the sockets over ends this one as a
        // signal does.
        tokio::select! {
            () = shutdown => {}
            () = serve.handed_over.cancelled() => {}
        }
        let grace = serve.live.generation().limits.shutdown_grace;
        tracing::info!("shutting down: no new connections, {grace:?} grace for open ones");
        serve.stop.cancel();
        running.acme.stop();
        // The control task stops the accept loops and waits for them.
        let _ = control.await;
        // It revokes its lease: the instance leaves `fleet status` at once.
        if let Some(following) = following {
            let _ = following.await;
        }
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
        if let Some(access) = &serve.live.generation().access {
            access.close().await;
        }
        serve.workers.stop().await;
        tracing::info!("stopped");
    }
}

/// Dropped with `run`'s future. When a caller drops it before the drain is
/// over (a test that fails half-way, an embedding that gives up), nothing is
/// left running: accept loops stop, connections close, workers exit. After
/// a finished `run` it changes nothing.
struct Abandoned(Arc<Running>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.serve.stop.cancel();
        self.0.acme.stop();
        self.0.serve.force_close.cancel();
        self.0.serve.workers.release();
    }
}

/// The policy a fleet instance starts with: etcd's, or, if this instance
/// refuses it, `state_dir`'s last good one (the refusal is reported once
/// connected). Whichever goes live becomes the last good copy (`bind`
/// saves etcd's once the whole configuration is ready).
async fn from_source(
    engine: &PolicyEngine,
    config: &mut Config,
    source: &SourceConfig,
    start: Start,
) -> Result<(Policy, crate::policy::LoadReport, Seen), StartError> {
    let module = Module::read(&config.policy.module).await?;
    let error = match Policy::prepare(engine, &config.policy, &module).await {
        Ok((policy, report)) => {
            let seen = Seen {
                live: Some(start.live),
                refusal: None,
            };
            return Ok((policy, report, seen));
        }
        Err(error) => error,
    };
    let Some(last) = start.fallback else {
        return Err(error.into());
    };
    tracing::warn!(%error, "source.refused: starting from state_dir's last good copy instead");
    fleet::configure(config, source, &last)?;
    let module = Module::read(&config.policy.module).await?;
    let (policy, report) = Policy::prepare(engine, &config.policy, &module).await?;
    let refusal = crate::control::fleet::layout::Refusal {
        module: start.live.module.clone(),
        code: error.code().into(),
        message: error.to_string(),
    };
    let seen = Seen {
        live: Some(start.live),
        refusal: Some(refusal),
    };
    Ok((policy, report, seen))
}
