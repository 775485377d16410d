//! The accept loop of one listener.
//!
//! A permit from the shared connection limit is taken *before* `accept`, so
//! at the limit new connections wait in the kernel's backlog instead of
//! costing memory here. A connection accepted while the listener's
//! pending-hello budget (in all, or its client's share) is spent is closed
//! at once with a reset: stalled hellos cannot take the slots good clients
//! need. Accept errors (e.g. out of file descriptors) are logged and retried
//! with a backoff; they never end the loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::observe::log_limit::LogLimit;
use crate::observe::metrics::ListenerMetrics;
use crate::outcome::ParseFailure;
use crate::path::admission::HelloBudget;
use crate::path::connection;
use crate::path::worker::{self, Workers};
use crate::policy::Connection;
use crate::state::live::Live;

/// The first connection logs its task's size (debug), once per process.
static SIZE_LOGGED: AtomicBool = AtomicBool::new(false);

/// Everything an accept loop shares with the server.
pub(crate) struct Serve {
    /// The configuration and policy new connections get.
    pub(crate) live: Live,
    pub(crate) permits: Arc<Semaphore>,
    /// Cancelled to stop accepting on every listener (shutdown).
    pub(crate) stop: CancellationToken,
    /// Cancelled when the shutdown grace period is over.
    pub(crate) force_close: CancellationToken,
    /// Cancelled once another process took the listening sockets over
    /// (`limen upgrade`): accept loops stop as on shutdown (the admin
    /// socket file, now the new process's, stays), and a QUIC listener
    /// stops reading its socket at once, since each datagram it took from
    /// there would be one the new process misses.
    pub(crate) handed_over: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// The threads connections run on.
    pub(crate) workers: Workers,
}

/// Accept on this worker's socket of a listener until `stop` (a child of
/// `serve.stop`, so shutdown also ends it; a reload that removes this
/// listener cancels it alone) is cancelled. Runs on the worker, whose
/// runtime the socket registers with.
pub(crate) async fn run(
    name: Arc<str>,
    socket: std::net::TcpListener,
    serve: Arc<Serve>,
    stop: CancellationToken,
    budget: Arc<HelloBudget>,
) {
    let worker = worker::index();
    let listener = match TcpListener::from_std(socket) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listener = &*name, worker, %error, "cannot accept");
            return;
        }
    };
    let mut backoff = Duration::from_millis(5);
    // Resolved once: a labelled lookup per connection would hash and lock.
    let metrics = Arc::new(serve.live.generation().metrics.listener(&name, worker));
    // This loop's own child of the shutdown's force-close token: the
    // connections' clones and waits then touch a node of this worker only,
    // not one every worker shares (a token's node is behind a mutex).
    let force_close = serve.force_close.child_token();
    let addr = listener.local_addr().ok();
    tracing::info!(target: "tls_sni", listener = &*name, addr = ?addr, worker, "tls.sni_listener.started");
    let stopped = || {
        tracing::info!(target: "tls_sni", listener = &*name, addr = ?addr, worker, "tls.sni_listener.stopped");
    };
    loop {
        // Both waits also watch `stop`: shutdown must not hang on a full
        // connection table or an idle listener.
        let permit = tokio::select! {
            permit = serve.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return stopped(),
            },
            () = stop.cancelled() => return stopped(),
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return stopped(),
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                static ACCEPT_ERRORS: LogLimit = LogLimit::new(1);
                if let Some(suppressed) = ACCEPT_ERRORS.allow() {
                    tracing::warn!(
                        target: "tls_sni", listener = &*name, %error, retry_in = ?backoff,
                        suppressed, "tls.sni_listener.accept_error"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return stopped(),
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(5);
        // A listener bound to one address accepts only on it: ask the kernel
        // (getsockname) only for a wildcard bind.
        let local = match addr {
            Some(addr) if !addr.ip().to_canonical().is_unspecified() => addr,
            _ => match stream.local_addr() {
                Ok(local) => local,
                Err(error) => {
                    tracing::warn!(listener = %name, %client, "dropped: no local address: {error}");
                    continue;
                }
            },
        };
        metrics.accepted();
        // The snapshot that decides this connection, whatever is swapped in
        // while it runs.
        let snapshot = serve.live.load();
        let admitted = match budget.admit(client.ip(), &snapshot.generation.limits) {
            Ok(admitted) => admitted,
            Err(reason) => {
                refuse(stream, &name, client, reason, &metrics, &budget);
                continue;
            }
        };
        let conn = Connection {
            client,
            local,
            listener: name.clone(),
        };
        let under = (snapshot, metrics.clone());
        let held = (permit, serve.tracker.clone());
        let task = connection::handle(stream, conn, under, force_close.clone(), held, admitted);
        // What every connection costs before it does anything: its task.
        if !SIZE_LOGGED.swap(true, Ordering::Relaxed) {
            let bytes = std::mem::size_of_val(&task);
            tracing::debug!(bytes, "connection task size");
        }
        serve.tracker.spawn(task);
    }
}

/// Close a connection the pending-hello budget has no room for: a reset at
/// once (no FIN handshake, no TIME_WAIT kept here), counted, and an event
/// at most once a second per reason.
fn refuse(
    stream: tokio::net::TcpStream,
    name: &str,
    client: std::net::SocketAddr,
    reason: ParseFailure,
    metrics: &ListenerMetrics,
    budget: &HelloBudget,
) {
    static TOTAL: LogLimit = LogLimit::new(1);
    static CLIENT: LogLimit = LogLimit::new(1);
    metrics.parse_failed(reason);
    // Linger 0 on a non-blocking socket: close sends RST and returns at once.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
    let limit = match reason {
        ParseFailure::ClientPendingLimit => &CLIENT,
        _ => &TOTAL,
    };
    if let Some(suppressed) = limit.allow() {
        tracing::warn!(
            target: "tls_sni", listener = name, %client, reason = reason.as_str(),
            pending = budget.pending(), suppressed, "tls.sni_listener.over_budget"
        );
    }
}
