//! Carrying a decided client out: a flow for `passthrough` (its held
//! datagrams replayed in order), a CONNECTION_CLOSE for `reject`; and a
//! flow's end, moves and counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use super::flow::{self, Flow, Learned, Stats};
use super::ids::Route;
use super::line::Line;
use super::pending::Pending;
use super::{Event, Listener};
use crate::decision::Alert;
use crate::hello::{HelloSummary, close_initial};
use crate::observe::access::ActionTaken;
use crate::outcome::End;
use crate::path::action::Action;
use crate::path::connection::decide::Verdict;
use crate::upstream::Dest;

impl Listener {
    pub(super) fn decided(
        &mut self,
        client: SocketAddr,
        verdict: Verdict,
        hello: Arc<HelloSummary>,
    ) {
        let Some(pending) = self.pending.remove(&client) else {
            return;
        };
        let mut line = Line {
            generation: pending.snapshot.generation.clone(),
            listener: self.name.clone(),
            client,
            hello: pending
                .snapshot
                .generation
                .access
                .as_ref()
                .map(|_| hello.clone()),
            result: verdict.result,
            policy: verdict.version.clone(),
            started: pending.started,
            upstream: None,
        };
        let mut member_lease = None;
        let (upstream, named) = match verdict.action {
            Action::Passthrough { dest, upstream } => match dest {
                Dest::Addrs(addrs) => (addrs.first().copied(), upstream.addr),
                Dest::Pool(pool) => {
                    let sni = hello.sni().map(|n| n.as_ref());
                    match pool.pick_datagram(pool.key(client.ip(), sni)) {
                        Some((member, lease)) => {
                            member_lease = Some(lease);
                            (Some(member), upstream.addr)
                        }
                        None => {
                            self.metrics.dropped("no_member");
                            return self.close(&pending, line, Alert::InternalError);
                        }
                    }
                }
            },
            Action::Reject(alert) => return self.close(&pending, line, alert),
            // `plan` refuses terminate for QUIC; challenges are TCP's.
            Action::Terminate { .. } | Action::Challenge { .. } | Action::Unreachable(_) => {
                self.metrics.dropped("unreachable");
                return self.close(&pending, line, Alert::InternalError);
            }
        };
        line.upstream = Some(named);
        let Some(upstream) = upstream else {
            self.metrics.dropped("unreachable");
            return self.close(&pending, line, Alert::InternalError);
        };
        let limits = &pending.snapshot.generation.limits;
        // Checked at admission too; decisions in flight may have filled it.
        if self.shared.flows.load(Ordering::Relaxed) >= limits.max_flows {
            return self.metrics.dropped("max_flows");
        }
        self.next_id += 1;
        let id = self.next_id;
        let stats = Arc::new(Stats::new());
        let learned = Learned::default();
        let idle = limits.flow_idle_timeout;
        let path = (id, 0, upstream, client);
        let (socket, relay) = match self.open_path(path, (&stats, &learned, idle)) {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(target: "tls_sni", %client, %upstream, %error, "quic.flow.no_socket");
                self.metrics.dropped("upstream_socket");
                return self.close(&pending, line, Alert::InternalError);
            }
        };
        let flow = Flow {
            id,
            upstream: socket,
            upstream_addr: upstream,
            stats,
            relay,
            path: 0,
            learned,
            original: pending.reader.dcid().unwrap_or_default().into(),
            idle,
            line,
            _held: (verdict.held, member_lease),
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
        tracing::debug!(
            target: "tls_sni", listener = &*self.name, %client, %upstream,
            replayed = pending.held.len(), "quic.flow.started"
        );
        self.keys.insert(id, client);
        self.flows.insert(client, flow);
    }

    /// A path of flow `id` (its `path`-th) to `upstream` for the client at
    /// `client`: a socket of its own and its relay task.
    fn open_path(
        &self,
        (id, path, upstream, client): (u64, u32, SocketAddr, SocketAddr),
        (stats, learned, idle): (&Arc<Stats>, &Learned, Duration),
    ) -> std::io::Result<(Arc<UdpSocket>, AbortHandle)> {
        let socket = Arc::new(crate::upstream::udp_to(upstream)?);
        let route = Route {
            worker: self.worker,
            events: self.events.clone(),
            id,
        };
        let relay = flow::relay(
            (socket.clone(), self.socket.clone()),
            (client, stats.clone()),
            (idle, self.serve.force_close.clone()),
            (self.shared.clone(), route, learned.clone()),
            self.metrics.clone(),
        );
        let events = self.events.clone();
        let task = self.serve.tracker.spawn(async move {
            let end = relay.await;
            let _ = events.send(Event::Ended { id, path, end });
        });
        Ok((socket, task.abort_handle()))
    }

    /// Answer the client with a CONNECTION_CLOSE carrying `alert`.
    fn close(&self, pending: &Pending, line: Line, alert: Alert) {
        let client = line.client;
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
        let datagrams = (pending.held.len() as u64, 0);
        line.finish(ActionTaken::Reject(alert), (0, 0), datagrams, End::Rejected);
    }

    /// Flow `id`'s client now sends from `to` (a datagram addressed by an
    /// ID its server chose came from there): the flow gets a new path, a
    /// socket of its own toward the upstream, so the server sees the move
    /// and validates the new address itself (RFC 9000 §9), sending it at
    /// most 3x what it received until it answers: a spoofed move cannot
    /// turn a flow onto a victim.
    pub(super) fn moved(&mut self, id: u64, to: SocketAddr, datagram: &[u8]) {
        let Some(from) = self.keys.get(&id).copied() else {
            return self.metrics.dropped("unknown_flow");
        };
        if from != to {
            if self.flows.contains_key(&to) {
                // Another flow's client sends from there.
                return self.metrics.dropped("address_in_use");
            }
            let Some(mut flow) = self.flows.remove(&from) else {
                return;
            };
            let path = (id, flow.path + 1, flow.upstream_addr, to);
            match self.open_path(path, (&flow.stats, &flow.learned, flow.idle)) {
                Ok((socket, relay)) => {
                    flow.relay.abort();
                    (flow.upstream, flow.relay, flow.path) = (socket, relay, flow.path + 1);
                }
                Err(_) => {
                    self.flows.insert(from, flow);
                    return self.metrics.dropped("upstream_socket");
                }
            }
            self.flows.insert(to, flow);
            self.keys.insert(id, to);
            tracing::info!(target: "tls_sni", listener = &*self.name, %from, %to, "quic.flow.moved");
        }
        if let Some(flow) = self.flows.get(&to) {
            match flow.to_upstream(datagram) {
                Ok(()) => self.metrics.up.inc(),
                Err(reason) => self.metrics.dropped(reason),
            }
        }
    }

    /// Path `path` of flow `id` ended (`None`: whichever it is now).
    pub(super) fn ended(&mut self, id: u64, path: Option<u32>, end: End) {
        let Some(client) = self.keys.get(&id).copied() else {
            return;
        };
        // The relay of a path the flow has since left: not its end.
        if path.is_some_and(|path| self.flows.get(&client).is_some_and(|f| f.path != path)) {
            return;
        }
        self.keys.remove(&id);
        let Some(flow) = self.flows.remove(&client) else {
            return;
        };
        if let Ok(learned) = flow.learned.lock() {
            self.shared.ids.forget(&learned);
        }
        self.shared.flows.fetch_sub(1, Ordering::Relaxed);
        self.metrics.flows_active.dec();
        flow.relay.abort();
        let ((up, up_bytes), (down, down_bytes)) = flow.stats.totals();
        tracing::debug!(
            target: "tls_sni", listener = &*self.name, %client, upstream = %flow.upstream_addr,
            up, up_bytes, down, down_bytes, seconds = flow.stats.age().as_secs(),
            end = end.as_str(), "quic.flow.ended"
        );
        let mut line = flow.line;
        line.client = client;
        line.finish(
            ActionTaken::Passthrough,
            (up_bytes, down_bytes),
            (up, down),
            end,
        );
    }
}
