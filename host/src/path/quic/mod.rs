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

mod flow;
mod pending;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::decision::Alert;
use crate::hello::{HelloSummary, InitialReader, QuicProgress, close_initial};
use crate::observe::log_limit::LogLimit;
use crate::observe::metrics::{ListenerMetrics, QuicMetrics};
use crate::path::accept::Serve;
use crate::path::action::Action;
use crate::path::connection::decide::{Verdict, decide};
use crate::path::worker;
use crate::policy::Connection;
use crate::upstream::Dest;
use flow::{End, Flow, Stats};
use pending::{MAX_HELD, Pending, PendingTable};

/// What a listener's workers share: its flow count, under `max_flows`.
#[derive(Default)]
pub(crate) struct Shared {
    flows: AtomicUsize,
}

/// What the listener loop hears from the tasks it started.
enum Event {
    Decided {
        client: SocketAddr,
        verdict: Verdict,
    },
    Ended {
        client: SocketAddr,
        id: u64,
        end: End,
    },
}

/// One worker's side of a QUIC listener.
struct Listener {
    name: Arc<str>,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    serve: Arc<Serve>,
    shared: Arc<Shared>,
    metrics: Arc<QuicMetrics>,
    listener_metrics: Arc<ListenerMetrics>,
    pending: PendingTable,
    flows: HashMap<SocketAddr, (u64, Flow)>,
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
        pending: PendingTable::default(),
        flows: HashMap::new(),
        next_id: 0,
        events,
        draining: false,
    };
    tracing::info!(target: "tls_sni", listener = &*listener.name, addr = %local, worker, "quic.listener.started");
    let mut buffer = vec![0u8; 65_535];
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let force_close = listener.serve.force_close.clone();
    loop {
        if listener.draining && listener.flows.is_empty() {
            break;
        }
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
            () = stop.cancelled(), if !listener.draining => listener.draining = true,
            () = force_close.cancelled() => break,
        }
    }
    tracing::info!(target: "tls_sni", listener = &*listener.name, addr = %local, worker, "quic.listener.stopped");
}

impl Listener {
    fn datagram(&mut self, bytes: &[u8], client: SocketAddr) {
        if let Some((_, flow)) = self.flows.get(&client) {
            match flow.to_upstream(bytes) {
                Ok(()) => self.metrics.up.inc(),
                Err(reason) => self.metrics.dropped(reason),
            }
            return;
        }
        if let Some(pending) = self.pending.get_mut(&client) {
            if pending.held.len() >= MAX_HELD {
                return self.metrics.dropped("held_full");
            }
            if !pending.deciding {
                match pending.reader.feed(bytes) {
                    Ok(QuicProgress::NeedMore) => {}
                    Ok(QuicProgress::Complete(framed)) => {
                        let hello = HelloSummary::parse(&framed);
                        pending.held.push(bytes.into());
                        pending.received += bytes.len();
                        return self.hello_complete(client, hello);
                    }
                    Err(error) => {
                        self.metrics.dropped(error.reason());
                        if error.is_final() {
                            self.pending.remove(&client);
                        }
                        return;
                    }
                }
            }
            pending.held.push(bytes.into());
            pending.received += bytes.len();
            return;
        }
        self.new_client(bytes, client);
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
            let (policy, generation) = (&snapshot.policy, &snapshot.generation);
            let verdict = decide(policy, &conn, Some(&hello), generation, &metrics).await;
            let _ = events.send(Event::Decided { client, verdict });
        });
    }

    fn heard(&mut self, event: Event) {
        match event {
            Event::Decided { client, verdict } => self.decided(client, verdict),
            Event::Ended { client, id, end } => {
                if self
                    .flows
                    .get(&client)
                    .is_some_and(|(flow_id, _)| *flow_id == id)
                    && let Some((_, flow)) = self.flows.remove(&client)
                {
                    self.ended(client, &flow, end);
                }
            }
        }
    }

    fn decided(&mut self, client: SocketAddr, verdict: Verdict) {
        let Some(pending) = self.pending.remove(&client) else {
            return;
        };
        let upstream = match verdict.action {
            Action::Passthrough { dest, .. } => match dest {
                Dest::Addrs(addrs) => addrs.first().copied(),
                // A pool member is picked by a TCP connect today.
                Dest::Pool(_) => {
                    self.metrics.dropped("pool_not_supported");
                    return self.close(&pending, client, Alert::InternalError);
                }
            },
            Action::Reject(alert) => return self.close(&pending, client, alert),
            // `plan` refuses terminate for QUIC; challenges are TCP's.
            Action::Terminate { .. } | Action::Challenge { .. } | Action::Unreachable(_) => {
                self.metrics.dropped("unreachable");
                return self.close(&pending, client, Alert::InternalError);
            }
        };
        let Some(upstream) = upstream else {
            return self.metrics.dropped("unreachable");
        };
        let socket = match flow::connect(upstream) {
            Ok(socket) => Arc::new(socket),
            Err(error) => {
                tracing::warn!(target: "tls_sni", %client, %upstream, %error, "quic.flow.no_socket");
                return self.metrics.dropped("upstream_socket");
            }
        };
        let stats = Arc::new(Stats::new());
        let reply_to = Arc::new(ArcSwap::from_pointee(client));
        let idle = pending.snapshot.generation.limits.flow_idle_timeout;
        let relay = flow::relay(
            (socket.clone(), self.socket.clone()),
            reply_to,
            stats.clone(),
            (idle, self.serve.force_close.clone()),
            self.metrics.clone(),
        );
        self.next_id += 1;
        let (id, events) = (self.next_id, self.events.clone());
        let task = self.serve.tracker.spawn(async move {
            let end = relay.await;
            let _ = events.send(Event::Ended { client, id, end });
        });
        let flow = Flow {
            upstream: socket,
            upstream_addr: upstream,
            stats,
            relay: task.abort_handle(),
            _held: verdict.held,
        };
        for datagram in &pending.held {
            match flow.to_upstream(datagram) {
                Ok(()) => self.metrics.up.inc(),
                Err(reason) => self.metrics.dropped(reason),
            }
        }
        self.shared.flows.fetch_add(1, Ordering::Relaxed);
        self.metrics.flows.inc();
        self.metrics.flows_active.inc();
        tracing::info!(
            target: "tls_sni", listener = &*self.name, %client, %upstream,
            replayed = pending.held.len(), "quic.flow.started"
        );
        self.flows.insert(client, (id, flow));
    }

    /// Answer `client` with a CONNECTION_CLOSE carrying `alert`.
    fn close(&self, pending: &Pending, client: SocketAddr, alert: Alert) {
        let reader = &pending.reader;
        let (Some(version), Some(dcid), Some(scid)) =
            (reader.version(), reader.dcid(), reader.scid())
        else {
            return;
        };
        // A bare close has no alert to carry: user_canceled's 90 says
        // "closed on purpose" without blaming the client's hello.
        let code = alert.code().unwrap_or(90);
        let limit = pending.received.saturating_mul(3);
        if let Some(answer) = close_initial(version, dcid, scid, code, limit) {
            let _ = socket2::SockRef::from(&*self.socket).send_to(&answer, &client.into());
        }
        tracing::info!(target: "tls_sni", listener = &*self.name, %client, alert = code, "quic.rejected");
    }

    fn ended(&self, client: SocketAddr, flow: &Flow, end: End) {
        self.shared.flows.fetch_sub(1, Ordering::Relaxed);
        self.metrics.flows_active.dec();
        flow.relay.abort();
        let ((up, up_bytes), (down, down_bytes)) = flow.stats.totals();
        tracing::info!(
            target: "tls_sni", listener = &*self.name, %client, upstream = %flow.upstream_addr,
            up, up_bytes, down, down_bytes, seconds = flow.stats.age().as_secs(),
            end = end.as_str(), "quic.flow.ended"
        );
    }

    /// Forget clients whose hello did not complete in time.
    fn sweep(&mut self) {
        for client in self.pending.expired(Instant::now()) {
            self.pending.remove(&client);
            self.metrics.dropped("hello_timeout");
        }
    }
}
