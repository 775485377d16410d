//! The set of running accept loops, and binding new ones. A reload binds
//! every added listener before anything changes, so a bind failure refuses
//! the new configuration whole; removing a listener stops its accept loop
//! while the connections it accepted carry on.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ListenerConfig;
use crate::listener::{self, Serve};

/// A socket bound for a listener, not yet accepting.
pub(crate) struct Bound {
    config: ListenerConfig,
    socket: TcpListener,
    local: SocketAddr,
}

impl Bound {
    /// Its name and the address it is bound to.
    pub(crate) fn addr(&self) -> (Arc<str>, SocketAddr) {
        (self.config.name.clone(), self.local)
    }
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("E010 cannot listen on {addr} ({name}): {error}")]
pub struct BindError {
    /// Listener name.
    pub name: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Why.
    pub error: std::io::Error,
}

impl BindError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        "E010"
    }
}

/// Bind each listener, or fail on the first that cannot be bound (the
/// others are closed when dropped).
pub(crate) async fn bind(configs: &[ListenerConfig]) -> Result<Vec<Bound>, BindError> {
    let mut bound = Vec::with_capacity(configs.len());
    for config in configs {
        let bind_error = |error| BindError {
            name: config.name.to_string(),
            addr: config.bind,
            error,
        };
        let socket = TcpListener::bind(config.bind).await.map_err(bind_error)?;
        let local = socket.local_addr().map_err(bind_error)?;
        bound.push(Bound {
            config: config.clone(),
            socket,
            local,
        });
    }
    Ok(bound)
}

/// One accept loop.
struct Running {
    config: ListenerConfig,
    local: SocketAddr,
    stop: CancellationToken,
}

/// Every running accept loop.
#[derive(Default)]
pub(crate) struct ListenerSet {
    running: Vec<Running>,
    loops: TaskTracker,
}

impl ListenerSet {
    /// Listeners in `wanted` not running now (a changed address counts as
    /// new), and names running now that `wanted` drops or moves.
    pub(crate) fn diff(&self, wanted: &[ListenerConfig]) -> (Vec<ListenerConfig>, Vec<Arc<str>>) {
        let same = |a: &ListenerConfig, b: &ListenerConfig| a.name == b.name && a.bind == b.bind;
        let added = wanted
            .iter()
            .filter(|w| !self.running.iter().any(|r| same(&r.config, w)))
            .cloned()
            .collect();
        let removed = self
            .running
            .iter()
            .filter(|r| !wanted.iter().any(|w| same(&r.config, w)))
            .map(|r| r.config.name.clone())
            .collect();
        (added, removed)
    }

    /// Start accepting on a bound socket.
    pub(crate) fn start(&mut self, bound: Bound, serve: &Arc<Serve>) {
        let stop = serve.stop.child_token();
        tracing::info!(listener = %bound.config.name, addr = %bound.local, "listening");
        self.loops.spawn(listener::run(
            bound.config.name.clone(),
            bound.socket,
            serve.clone(),
            stop.clone(),
        ));
        self.running.push(Running {
            config: bound.config,
            local: bound.local,
            stop,
        });
    }

    /// Stop accepting on `name`; its open connections are not touched.
    pub(crate) fn stop(&mut self, name: &str) {
        self.running.retain(|r| {
            if *r.config.name != *name {
                return true;
            }
            tracing::info!(listener = %r.config.name, addr = %r.local, "listener closed");
            r.stop.cancel();
            false
        });
    }

    /// Names and bound addresses, in start order.
    pub(crate) fn addrs(&self) -> Vec<(Arc<str>, SocketAddr)> {
        self.running
            .iter()
            .map(|r| (r.config.name.clone(), r.local))
            .collect()
    }

    /// Wait until every accept loop has ended (after shutdown cancelled them).
    pub(crate) async fn wait(&self) {
        self.loops.close();
        self.loops.wait().await;
    }
}
