//! QUIC on one worker's socket of a `protocol = "quic"` listener: read the
//! ClientHello from a new client's Initial packets (`hello::InitialReader`,
//! across datagrams and in any order), have the policy decide exactly as
//! for TCP (`connection::decide`), and carry the decision out:
//! `passthrough` makes a flow (`flow.rs`) that the held datagrams are
//! replayed into, in order; `reject` answers with a CONNECTION_CLOSE
//! carrying the TLS alert, within the 3x a client's unvalidated address
//! allows (RFC 9000 §8.1). Anything else a client sends before its hello
//! is complete is dropped and counted by reason; nothing else is answered.
//!
//! Flows are keyed by the client's address: the kernel keeps a 4-tuple on
//! one worker's `SO_REUSEPORT` socket.

mod carry;
mod flow;
mod ids;
mod line;
mod pending;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hello::{HelloSummary, InitialReader, QuicError, QuicProgress};
use crate::observe::log_limit::LogLimit;
use crate::observe::metrics::{ListenerMetrics, QuicMetrics};
use crate::outcome::End;
use crate::path::accept::Serve;
use crate::path::connection::decide::{Verdict, decide};
use crate::path::worker;
use crate::policy::Connection;
use flow::Flow;
use ids::Route;
use pending::{MAX_HELD, MAX_HELD_BYTES, Pending, PendingTable};

/// What a listener's workers share: its flow count, under `max_flows`,
/// and the connection IDs that find a flow whose client moved.
#[derive(Default)]
pub(crate) struct Shared {
    flows: AtomicUsize,
    ids: ids::Ids,
}

/// What a listener loop hears from the tasks it started and from the
/// listener's other workers.
enum Event {
    Decided {
        client: SocketAddr,
        verdict: Verdict,
        hello: Arc<HelloSummary>,
    },
    /// Path `path` of flow `id`: its relay ended.
    Ended { id: u64, path: u32, end: End },
    /// A datagram for flow `id` came from `to` (to another worker, which
    /// passes it on here, where the flow lives).
    Moved {
        id: u64,
        to: SocketAddr,
        datagram: Box<[u8]>,
    },
}

/// How long another worker's pointer to a moved flow is kept unused.
const REDIRECT_IDLE: Duration = Duration::from_secs(60);
/// At most this many such pointers per worker: beyond, a moved client's
/// datagrams are looked up by ID each time.
const MAX_REDIRECTS: usize = 4096;

/// One worker's side of a QUIC listener.
struct Listener {
    name: Arc<str>,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    serve: Arc<Serve>,
    shared: Arc<Shared>,
    metrics: Arc<QuicMetrics>,
    listener_metrics: Arc<ListenerMetrics>,
    worker: usize,
    pending: PendingTable,
    /// Flows by their client's address, and each flow's address by id.
    flows: HashMap<SocketAddr, Flow>,
    keys: HashMap<u64, SocketAddr>,
    /// Clients of flows another worker holds (they moved, and the kernel
    /// brings their new address here): where to pass their datagrams.
    redirects: HashMap<SocketAddr, (Route, Instant)>,
    next_id: u64,
    events: mpsc::UnboundedSender<Event>,
    /// Stopped: no new client; the flows carry on until they end.
    draining: bool,
}

/// Serve `socket` until `stop`, then the open flows until they end (or
/// the shutdown's grace is over).
pub(crate) async fn run(
    name: Arc<str>,
    socket: std::net::UdpSocket,
    serve: Arc<Serve>,
    stop: CancellationToken,
    shared: Arc<Shared>,
) {
    let worker = worker::index();
    let socket = match UdpSocket::from_std(socket) {
        Ok(socket) => Arc::new(socket),
        Err(error) => {
            tracing::error!(listener = &*name, worker, %error, "cannot receive");
            return;
        }
    };
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let generation = serve.live.generation();
    let (events, mut heard) = mpsc::unbounded_channel();
    let mut listener = Listener {
        metrics: Arc::new(generation.metrics.quic(&name)),
        listener_metrics: Arc::new(generation.metrics.listener(&name, worker)),
        name,
        socket,
        local,
        serve,
        shared,
        worker,
        pending: PendingTable::default(),
        flows: HashMap::new(),
        keys: HashMap::new(),
        redirects: HashMap::new(),
        next_id: 0,
        events,
        draining: false,
    };
    tracing::info!(target: "tls_sni", listener = &*listener.name, addr = %local, worker, "quic.listener.started");
    let mut buffer = vec![0u8; 65_535];
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let force_close = listener.serve.force_close.clone();
    let handed_over = listener.serve.handed_over.clone();
    // Stopped, the loop relays its flows for at most the shutdown grace (a
    // shutdown's force-close may come sooner): a listener a reload removed
    // must give its port back, even to clients that never go idle.
    let mut drained_by = None;
    loop {
        if listener.draining && listener.flows.is_empty() {
            break;
        }
        let grace_over = async {
            match drained_by {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = listener.socket.recv_from(&mut buffer) => match received {
                Ok((n, client)) => listener.datagram(&buffer[..n], client),
                Err(error) => {
                    static FAILED: LogLimit = LogLimit::new(1);
                    if let Some(suppressed) = FAILED.allow() {
                        tracing::warn!(listener = &*listener.name, %error, suppressed, "quic receive failed");
                    }
                }
            },
            Some(event) = heard.recv() => listener.heard(event),
            _ = sweep.tick() => listener.sweep(),
            () = stop.cancelled(), if !listener.draining => {
                listener.draining = true;
                let grace = listener.serve.live.generation().limits.shutdown_grace;
                drained_by = Some(tokio::time::Instant::now() + grace);
            }
            () = grace_over => break,
            () = force_close.cancelled() => break,
            // Its flows end here: their datagrams now reach the new process.
            () = handed_over.cancelled() => break,
        }
    }
    // Cut by the end of the grace: each open flow's line says so.
    let open: Vec<u64> = listener.keys.keys().copied().collect();
    for id in open {
        listener.ended(id, None, End::Shutdown);
    }
    tracing::info!(target: "tls_sni", listener = &*listener.name, addr = %local, worker, "quic.listener.stopped");
}

impl Listener {
    fn datagram(&mut self, bytes: &[u8], client: SocketAddr) {
        if let Some(flow) = self.flows.get(&client) {
            // A NAT that gave the flow's port to another device, within
            // the flow's idle timeout: the newcomer's valid Initial ends
            // the old flow and is read as a new client's, rather than be
            // sent to the old flow's upstream.
            if flow.foreign(bytes) && self.is_initial(bytes) {
                self.ended(flow.id, None, End::AddressReused);
                return self.new_client(bytes, client);
            }
            match flow.to_upstream(bytes) {
                Ok(()) => self.metrics.up.inc(),
                Err(reason) => self.metrics.dropped(reason),
            }
            return;
        }
        if let Some(pending) = self.pending.get_mut(&client) {
            if pending.held.len() >= MAX_HELD || pending.received + bytes.len() > MAX_HELD_BYTES {
                return self.metrics.dropped("held_full");
            }
            if !pending.deciding {
                match pending.reader.feed(bytes) {
                    Ok(QuicProgress::NeedMore) => {}
                    Ok(QuicProgress::Complete(framed)) => {
                        let hello = HelloSummary::parse(&framed);
                        pending.hold(bytes);
                        return self.hello_complete(client, hello);
                    }
                    // 0-RTT (or Handshake) from a client still sending its
                    // Initials: part of its flight, held to be replayed.
                    Err(QuicError::NotInitial) => {}
                    Err(error) => {
                        self.metrics.dropped(error.reason());
                        if error.is_final() {
                            self.pending.remove(&client);
                        }
                        return;
                    }
                }
            }
            pending.hold(bytes);
            return;
        }
        // A short header from an address no flow has, with an ID a server
        // chose: a client that moved. Only short headers: a client may not
        // migrate before its handshake is confirmed (RFC 9000 §9), a new
        // client's Initials from a reused address are not taken for an old
        // flow's, and a flood of spoofed Initials never takes the lock.
        if bytes.first().is_some_and(|first| first & 0x80 == 0) {
            return self.short_from_unknown(bytes, client);
        }
        self.new_client(bytes, client);
    }

    /// Does `bytes` hold a QUIC Initial limen can read?
    fn is_initial(&self, bytes: &[u8]) -> bool {
        let cap = self.serve.live.load().generation.limits.hello_max_bytes;
        InitialReader::new(cap).feed(bytes).is_ok()
    }

    /// A short-header datagram from an address this worker has no flow or
    /// pending client for: a flow whose client moved, here or on another
    /// worker, or nothing.
    fn short_from_unknown(&mut self, bytes: &[u8], client: SocketAddr) {
        if let Some((route, used)) = self.redirects.get_mut(&client) {
            *used = Instant::now();
            let (id, to, datagram) = (route.id, client, bytes.into());
            let _ = route.events.send(Event::Moved { id, to, datagram });
            return;
        }
        let Some(route) = self.shared.ids.find(bytes) else {
            return self.metrics.dropped("unknown_flow");
        };
        if route.worker == self.worker {
            return self.moved(route.id, client, bytes);
        }
        let (id, to, datagram) = (route.id, client, bytes.into());
        let _ = route.events.send(Event::Moved { id, to, datagram });
        // Bounded: spoofed addresses with a known ID could otherwise grow it.
        if self.redirects.len() < MAX_REDIRECTS {
            self.redirects.insert(client, (route, Instant::now()));
        }
    }

    fn new_client(&mut self, bytes: &[u8], client: SocketAddr) {
        if self.draining {
            return self.metrics.dropped("shutting_down");
        }
        let snapshot = self.serve.live.load();
        let limits = &snapshot.generation.limits;
        if self.shared.flows.load(Ordering::Relaxed) >= limits.max_flows {
            return self.metrics.dropped("max_flows");
        }
        let caps = (
            limits.max_pending_initials,
            limits.max_pending_initials_per_client,
        );
        if let Err(full) = self.pending.admit(client, caps) {
            return self.metrics.dropped(full.reason());
        }
        let mut reader = InitialReader::new(limits.hello_max_bytes);
        let hello = match reader.feed(bytes) {
            Ok(QuicProgress::NeedMore) => None,
            Ok(QuicProgress::Complete(framed)) => Some(HelloSummary::parse(&framed)),
            Err(error) => return self.metrics.dropped(error.reason()),
        };
        let pending = Pending {
            reader,
            held: vec![bytes.into()],
            received: bytes.len(),
            started: Instant::now(),
            deadline: Instant::now() + limits.hello_timeout,
            deciding: false,
            snapshot: snapshot.clone(),
        };
        self.pending.insert(client, pending);
        if let Some(hello) = hello {
            self.hello_complete(client, hello);
        }
    }

    /// The hello is in: parsed, it goes to the policy on a task of its own
    /// (the loop serves the other clients meanwhile).
    fn hello_complete(
        &mut self,
        client: SocketAddr,
        hello: Result<HelloSummary, crate::hello::HelloError>,
    ) {
        let hello = match hello {
            Ok(hello) => Arc::new(hello),
            Err(error) => {
                self.metrics.dropped(error.reason());
                self.pending.remove(&client);
                return;
            }
        };
        let Some(pending) = self.pending.get_mut(&client) else {
            return;
        };
        pending.deciding = true;
        self.listener_metrics.accepted();
        let snapshot = pending.snapshot.clone();
        let conn = Connection {
            client,
            local: self.local,
            listener: self.name.clone(),
        };
        let (events, metrics) = (self.events.clone(), self.listener_metrics.clone());
        tokio::spawn(async move {
            let live = (&*snapshot.policy, snapshot.trial.as_deref());
            let verdict = decide(live, &conn, Some(&hello), &snapshot.generation, &metrics).await;
            let _ = events.send(Event::Decided {
                client,
                verdict,
                hello,
            });
        });
    }

    fn heard(&mut self, event: Event) {
        match event {
            Event::Decided {
                client,
                verdict,
                hello,
            } => self.decided(client, verdict, hello),
            Event::Ended { id, path, end } => self.ended(id, Some(path), end),
            Event::Moved { id, to, datagram } => self.moved(id, to, &datagram),
        }
    }

    /// Forget clients whose hello did not complete in time.
    fn sweep(&mut self) {
        let now = Instant::now();
        for client in self.pending.expired(now) {
            self.pending.remove(&client);
            self.metrics.dropped("hello_timeout");
        }
        self.redirects
            .retain(|_, (_, used)| now.duration_since(*used) < REDIRECT_IDLE);
    }
}
