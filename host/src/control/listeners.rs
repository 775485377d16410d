//! The set of running accept loops, and binding new ones. A reload binds
//! every added listener before anything changes, so a bind failure refuses
//! the new configuration whole; removing a listener stops its accept loop
//! while the connections it accepted carry on.
//!
//! Each listener is one `SO_REUSEPORT` socket per worker, all bound to the
//! same address: the kernel balances connections across them, and each
//! worker accepts only on its own.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::activation;
use crate::path::accept::{self, Serve};
use crate::path::admission::HelloBudget;
use crate::path::quic;
use crate::state::config::{ListenerConfig, Transport};

/// A listener's sockets (one per worker), bound, not yet accepting.
pub(crate) struct Bound {
    config: ListenerConfig,
    sockets: Sockets,
    local: SocketAddr,
}

/// One socket per worker: listening TCP, or UDP for QUIC.
enum Sockets {
    Tcp(Vec<TcpListener>),
    Udp(Vec<UdpSocket>),
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

/// Bind each listener once per worker, or fail on the first that cannot be
/// bound (the others are closed when dropped).
/// `backlog`: connections the kernel queues for each socket before limen
/// accepts them.
pub(crate) fn bind(
    configs: &[ListenerConfig],
    workers: usize,
    backlog: u32,
) -> Result<Vec<Bound>, BindError> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    let mut bound = Vec::with_capacity(configs.len());
    for config in configs {
        let bind_error = |error| BindError {
            name: config.name.to_string(),
            addr: config.bind,
            error,
        };
        if let Some(given) = activation::take(config) {
            let (sockets, local) =
                inherited(given, config.transport, workers).map_err(bind_error)?;
            bound.push(Bound {
                config: config.clone(),
                sockets,
                local,
            });
            continue;
        }
        if config.transport == Transport::Quic {
            let (sockets, local) = bind_udp(config.bind, workers).map_err(bind_error)?;
            bound.push(Bound {
                config: config.clone(),
                sockets: Sockets::Udp(sockets),
                local,
            });
            continue;
        }
        // SO_REUSEPORT would let this bind share a port another socket (a
        // second limen, another listener of this config) already listens
        // on: a plain bind first, closed at once, refuses that.
        if config.bind.port() != 0 {
            exclusive(config.bind).map_err(bind_error)?;
        }
        let first = reuseport(config.bind, backlog).map_err(bind_error)?;
        // Port 0: the first socket got a port; the others join it there.
        let local = first.local_addr().map_err(bind_error)?;
        let mut sockets = vec![first];
        for _ in 1..workers.max(1) {
            sockets.push(reuseport(local, backlog).map_err(bind_error)?);
        }
        let sockets = Sockets::Tcp(sockets);
        bound.push(Bound {
            config: config.clone(),
            sockets,
            local,
        });
    }
    Ok(bound)
}

/// Sockets this process was given (see [`activation`]). One (systemd's)
/// is shared by every worker, each accepting on its own duplicate; a group
/// (an old limen's, one per its worker) is kept whole, each socket with
/// its own accept loop, since each holds a queue of its own. Either way
/// nothing queued on them is lost.
fn inherited(
    given: Vec<Socket>,
    transport: Transport,
    workers: usize,
) -> std::io::Result<(Sockets, SocketAddr)> {
    let wrong = |what| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let mut local = None;
    for socket in &given {
        let at = socket.local_addr()?.as_socket();
        let at = at.ok_or_else(|| wrong("the inherited socket is not an IP socket"))?;
        if local.is_some_and(|l| l != at) {
            return Err(wrong("the inherited sockets are on different addresses"));
        }
        local = Some(at);
        socket.set_nonblocking(true)?;
        let kind = socket.r#type()?;
        if transport == Transport::Quic && kind != Type::DGRAM {
            return Err(wrong(
                "a QUIC listener needs a UDP socket; the inherited one is not",
            ));
        }
        if transport != Transport::Quic && (kind != Type::STREAM || !socket.is_listener()?) {
            return Err(wrong("the inherited socket is not a listening TCP socket"));
        }
    }
    let local = local.ok_or_else(|| wrong("no socket"))?;
    let mut all = given;
    if let [one] = &all[..] {
        let copies = (1..workers.max(1)).map(|_| one.try_clone());
        let copies = copies.collect::<std::io::Result<Vec<_>>>()?;
        all.extend(copies);
    }
    let sockets = match transport {
        Transport::Quic => Sockets::Udp(all.into_iter().map(Into::into).collect()),
        _ => Sockets::Tcp(all.into_iter().map(Into::into).collect()),
    };
    Ok((sockets, local))
}

/// A TCP socket for `addr` with `SO_REUSEADDR`, as std and tokio make
/// them: a restart must not wait out TIME_WAIT.
fn tcp_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// Bind `addr` without `SO_REUSEPORT`: fails while anything listens there.
fn exclusive(addr: SocketAddr) -> std::io::Result<()> {
    tcp_socket(addr)?.bind(&addr.into())
}

/// One non-blocking listening socket in `addr`'s `SO_REUSEPORT` group.
fn reuseport(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = tcp_socket(addr)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// What a QUIC listener's socket asks the kernel to hold for it.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// A QUIC listener's UDP sockets, one per worker in one `SO_REUSEPORT`
/// group (the kernel hashes a client's 4-tuple to one of them), after a
/// plain bind has checked that no other socket holds the port.
fn bind_udp(addr: SocketAddr, workers: usize) -> std::io::Result<(Vec<UdpSocket>, SocketAddr)> {
    let udp = |addr: SocketAddr, shared: bool| -> std::io::Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(shared)?;
        // A burst that arrives while the worker is busy waits here rather
        // than being dropped by the kernel (the default, 208 KiB, holds
        // about 90 full-size datagrams). The kernel caps the request at
        // net.core.rmem_max; memory is taken only while datagrams wait.
        socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER)?;
        socket.bind(&addr.into())?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    };
    if addr.port() != 0 {
        drop(udp(addr, false)?);
    }
    let first = udp(addr, true)?;
    let local = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        sockets.push(udp(local, true)?);
    }
    Ok((sockets, local))
}

/// One listener's accept loops.
struct Running {
    config: ListenerConfig,
    local: SocketAddr,
    stop: CancellationToken,
    /// Its sockets, duplicated: what an upgrade hands to the new process
    /// (closed with the listener).
    sockets: Vec<OwnedFd>,
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
        let same = |a: &ListenerConfig, b: &ListenerConfig| {
            a.name == b.name && a.bind == b.bind && a.transport == b.transport
        };
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

    /// Start accepting on a bound listener: each socket on its worker.
    pub(crate) fn start(&mut self, bound: Bound, serve: &Arc<Serve>) {
        let stop = serve.stop.child_token();
        // One budget for the listener, whichever worker accepts.
        let budget = HelloBudget::new();
        tracing::info!(
            listener = %bound.config.name, addr = %bound.local,
            transport = bound.config.transport.as_str(), "listening"
        );
        let kept: std::io::Result<Vec<OwnedFd>> = match &bound.sockets {
            Sockets::Tcp(sockets) => sockets
                .iter()
                .map(|s| s.as_fd().try_clone_to_owned())
                .collect(),
            Sockets::Udp(sockets) => sockets
                .iter()
                .map(|s| s.as_fd().try_clone_to_owned())
                .collect(),
        };
        // Out of descriptors: the listener serves; only an upgrade would
        // lack it (and says so).
        let kept = kept.unwrap_or_else(|error| {
            tracing::warn!(listener = %bound.config.name, "cannot keep the sockets for an upgrade: {error}");
            Vec::new()
        });
        match bound.sockets {
            Sockets::Tcp(sockets) => {
                for (worker, socket) in sockets.into_iter().enumerate() {
                    let accept = accept::run(
                        bound.config.name.clone(),
                        socket,
                        serve.clone(),
                        stop.clone(),
                        budget.clone(),
                    );
                    serve.workers.spawn(worker, self.loops.track_future(accept));
                }
            }
            Sockets::Udp(sockets) => {
                let shared = Arc::new(quic::Shared::default());
                for (worker, socket) in sockets.into_iter().enumerate() {
                    let name = bound.config.name.clone();
                    let run = quic::run(name, socket, serve.clone(), stop.clone(), shared.clone());
                    // Tracked as a connection is: once stopped, the loop
                    // still relays its flows until they end, which the
                    // shutdown's grace bounds (the accept loops' wait does not).
                    serve.workers.spawn(worker, serve.tracker.track_future(run));
                }
            }
        }
        self.running.push(Running {
            config: bound.config,
            local: bound.local,
            stop,
            sockets: kept,
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

    /// Each listener's name and its sockets (duplicates), for an upgrade.
    pub(crate) fn handover(&self) -> std::io::Result<Vec<(Arc<str>, Vec<OwnedFd>)>> {
        self.running
            .iter()
            .map(|r| {
                let dups = r.sockets.iter().map(OwnedFd::try_clone);
                Ok((r.config.name.clone(), dups.collect::<std::io::Result<_>>()?))
            })
            .collect()
    }

    /// Wait until every accept loop has ended (after shutdown cancelled them).
    pub(crate) async fn wait(&self) {
        self.loops.close();
        self.loops.wait().await;
    }
}
