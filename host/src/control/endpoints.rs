//! The admin, metrics and status endpoints' sockets: bound at start (or
//! taken over from the limen this one upgrades: `activation`, by name),
//! and kept, duplicated, for the next upgrade to hand on.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use tokio::net::TcpListener;

use super::activation::{self, ADMIN, METRICS, STATUS};
use super::admin;
use crate::state::config::Config;

/// A bound `[metrics]` or `[status]` listener and what it serves.
pub(crate) struct HttpListener {
    pub(crate) listener: TcpListener,
    /// `/metrics`.
    pub(crate) metrics: bool,
    /// `/status` and `/status.json`.
    pub(crate) status: bool,
}

/// What could not be bound: what it was to serve, its address, why
/// (`StartError::Metrics`).
pub(crate) type HttpBindError = (&'static str, SocketAddr, std::io::Error);

/// Bind `[metrics]` and `[status]`: a listener each, so `/metrics` can be
/// opened to a Prometheus while the page stays private; one for both when
/// the binds are equal (port 0 asks for a port of its own: not shared).
pub(crate) async fn bind_http(config: &Config) -> Result<Vec<HttpListener>, HttpBindError> {
    let metrics = config.metrics.bind;
    let status = config.status.as_ref().map(|s| s.bind);
    let shared = status.is_some_and(|addr| Some(addr) == metrics && addr.port() != 0);
    let wanted = [
        metrics.map(|addr| (addr, true, shared)),
        status.filter(|_| !shared).map(|addr| (addr, false, true)),
    ];
    let mut bound = Vec::new();
    for (addr, metrics, status) in wanted.into_iter().flatten() {
        let serving = match (metrics, status) {
            (true, true) => "metrics and the status page",
            (true, false) => "metrics",
            _ => "the status page",
        };
        let name = if metrics { METRICS } else { STATUS };
        let listener = match activation::take_named(name).filter(|s| same_addr(s, addr)) {
            Some(socket) => TcpListener::from_std(socket.into()),
            None => TcpListener::bind(addr).await,
        };
        let listener = listener.map_err(|error| (serving, addr, error))?;
        bound.push(HttpListener {
            listener,
            metrics,
            status,
        });
    }
    Ok(bound)
}

/// Whether a socket an old limen handed over is on `addr` (it then
/// serves, made non-blocking; else the configured address is bound).
fn same_addr(socket: &socket2::Socket, addr: SocketAddr) -> bool {
    let local = socket.local_addr().ok().and_then(|a| a.as_socket());
    local == Some(addr) && socket.set_nonblocking(true).is_ok()
}

/// The endpoints' sockets, duplicated, by their hand-over names.
pub(crate) fn kept(
    admin: Option<&admin::Endpoint>,
    http: &[HttpListener],
) -> std::io::Result<Vec<(&'static str, OwnedFd)>> {
    let mut endpoints = Vec::new();
    if let Some(admin) = admin {
        endpoints.push((ADMIN, admin.socket()?));
    }
    for h in http {
        let name = if h.metrics { METRICS } else { STATUS };
        endpoints.push((name, h.listener.as_fd().try_clone_to_owned()?));
    }
    Ok(endpoints)
}
