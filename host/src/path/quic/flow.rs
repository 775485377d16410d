//! A passed-through QUIC flow: one connected UDP socket to the upstream.
//! The listener loop sends the client's datagrams on it; a task of the
//! flow's own sends the upstream's back to the client from the listener's
//! socket (so from the address the client sent to), until the flow has
//! been idle for `flow_idle_timeout` or limen stops.
//!
//! No buffer per flow: a datagram is read into the worker thread's one
//! buffer and sent on before the task yields.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::ids::Route;
use crate::hello::long_header_scid;
use crate::observe::metrics::QuicMetrics;
use crate::outcome::End;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

thread_local! {
    /// One receive buffer per worker thread, for every flow it relays.
    static BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; MAX_DATAGRAM].into_boxed_slice());
}

/// What a flow counts, shared by the listener loop (client to upstream)
/// and the flow's task (upstream to client).
pub(super) struct Stats {
    started: Instant,
    /// Milliseconds after `started` of the last datagram either way.
    last: AtomicU64,
    pub(super) up: (AtomicU64, AtomicU64),
    pub(super) down: (AtomicU64, AtomicU64),
}

impl Stats {
    pub(super) fn new() -> Stats {
        Stats {
            started: Instant::now(),
            last: AtomicU64::new(0),
            up: Default::default(),
            down: Default::default(),
        }
    }

    /// A datagram went by.
    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last.load(Ordering::Relaxed)))
    }

    /// (datagrams, bytes) each way: up, down.
    pub(super) fn totals(&self) -> ((u64, u64), (u64, u64)) {
        let read = |(d, b): &(AtomicU64, AtomicU64)| {
            (d.load(Ordering::Relaxed), b.load(Ordering::Relaxed))
        };
        (read(&self.up), read(&self.down))
    }

    pub(super) fn age(&self) -> Duration {
        self.started.elapsed()
    }
}

/// One flow, as the listener loop keeps it.
pub(super) struct Flow {
    /// Its key in the loop's `keys`.
    pub(super) id: u64,
    /// The socket of its current path (one per client address: a client
    /// that moves gets a new one, so its server sees the move too).
    pub(super) upstream: Arc<UdpSocket>,
    pub(super) upstream_addr: SocketAddr,
    pub(super) stats: Arc<Stats>,
    /// The relay of the current path, and which path it is (a relay that
    /// ended as its path was replaced is not the flow's end).
    pub(super) relay: tokio::task::AbortHandle,
    pub(super) path: u32,
    /// The connection IDs its server chose, learned by its relays, to be
    /// forgotten when it ends.
    pub(super) learned: Learned,
    /// The Destination Connection ID of its client's first Initial.
    pub(super) original: Box<[u8]>,
    pub(super) idle: Duration,
    /// Its access log line, finished when it ends.
    pub(super) line: super::line::Line,
    /// Concurrency slots the policy took, and the pool member's lease,
    /// held for the flow's life.
    pub(super) _held: (
        crate::policy::limit_table::Held,
        Option<crate::upstream::pool::Lease>,
    ),
}

impl Flow {
    /// A long-header packet addressed by an ID that is neither the one
    /// this flow's client started with nor one its server chose: another
    /// connection from the same address and port. (Short headers carry IDs
    /// the server may have issued encrypted, so they are never judged.)
    pub(super) fn foreign(&self, datagram: &[u8]) -> bool {
        let Some(id) = crate::hello::destination_id(datagram, 0) else {
            return false;
        };
        if datagram[0] & 0x80 == 0 || *id == *self.original {
            return false;
        }
        self.learned
            .lock()
            .is_ok_and(|learned| !learned.iter().any(|known| **known == *id))
    }

    /// Send a client's datagram on; a full socket buffer drops it (as the
    /// network would), as does an upstream that said it is not there (an
    /// ICMP unreachable, reported on the next send): the reason is given.
    pub(super) fn to_upstream(&self, datagram: &[u8]) -> Result<(), &'static str> {
        // Straight to the kernel: tokio's `try_send` answers WouldBlock
        // until its reactor has seen the socket writable once, which
        // would drop the replayed hello of every new flow.
        match socket2::SockRef::from(&*self.upstream).send(datagram) {
            Ok(_) => {
                self.stats.touch();
                let (count, bytes) = &self.stats.up;
                count.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(datagram.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err("upstream_busy"),
            Err(_) => Err("upstream_unreachable"),
        }
    }
}

/// A flow's learned connection IDs: pushed to by its relay when its server
/// names one (its long-header packets, during the handshake), read when the
/// flow ends. A mutex no two threads contend for: both sides run on the
/// flow's worker.
pub(super) type Learned = Arc<std::sync::Mutex<Vec<Box<[u8]>>>>;

/// The upstream's datagrams on one path back to `client` until the flow is
/// idle or limen stops. The IDs its server chooses are made known to the
/// listener's workers, so a client that moves is found.
pub(super) async fn relay(
    (upstream, listener): (Arc<UdpSocket>, Arc<UdpSocket>),
    (client, stats): (SocketAddr, Arc<Stats>),
    (idle, stop): (Duration, CancellationToken),
    (shared, route, learned): (Arc<Shared>, Route, Learned),
    metrics: Arc<QuicMetrics>,
) -> End {
    loop {
        let left = idle.saturating_sub(stats.idle_for());
        if left.is_zero() {
            break End::IdleTimeout;
        }
        tokio::select! {
            ready = upstream.readable() => {
                if ready.is_err() {
                    break End::IoError;
                }
                let learn = |id: &[u8]| {
                    let Ok(mut learned) = learned.lock() else { return };
                    // A handful per flow: the server's, during its handshake.
                    if learned.len() < 8 && !learned.iter().any(|known| **known == *id) {
                        shared.ids.learn(id, route.clone());
                        learned.push(id.into());
                    }
                };
                if let Err(end) = drain(&upstream, &listener, client, (&stats, learn), &metrics) {
                    break end;
                }
            }
            // Woken to look again: the client may have sent meanwhile.
            () = tokio::time::sleep(left) => {}
            () = stop.cancelled() => break End::Shutdown,
        }
    }
}

/// Datagrams relayed before the relay task goes back to its `select!`,
/// whose readiness wait counts against tokio's cooperative budget: a fast
/// upstream cannot hold the worker from its other flows and listener.
const BATCH: usize = 64;

/// The datagrams the upstream socket holds now (at most [`BATCH`]), sent
/// to `client`.
fn drain(
    upstream: &UdpSocket,
    listener: &UdpSocket,
    client: SocketAddr,
    (stats, mut learn): (&Stats, impl FnMut(&[u8])),
    metrics: &QuicMetrics,
) -> Result<(), End> {
    BUFFER.with_borrow_mut(|buffer| {
        for _ in 0..BATCH {
            let n = match upstream.try_recv(buffer) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                // An ICMP port unreachable from the upstream shows here:
                // the flow carries on (the client's retransmission may
                // find it back), counted.
                Err(_) => {
                    metrics.dropped("upstream_unreachable");
                    return Ok(());
                }
            };
            stats.touch();
            if let Some(id) = long_header_scid(&buffer[..n]) {
                learn(id);
            }
            match socket2::SockRef::from(listener).send_to(&buffer[..n], &client.into()) {
                Ok(_) => {
                    let (count, bytes) = &stats.down;
                    count.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                    metrics.down.inc();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    metrics.dropped("listener_busy")
                }
                Err(_) => return Err(End::IoError),
            }
        }
        Ok(())
    })
}
