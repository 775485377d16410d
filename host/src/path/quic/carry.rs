//! Carrying a decided client out: a flow for `passthrough` (its held
//! datagrams replayed in order), a CONNECTION_CLOSE for `reject`; and a
//! flow's end, moves and counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;

use super::flow::{self, Flow, Stats};
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
            hello,
            result: verdict.result,
            policy: pending.snapshot.policy.version().id.clone(),
            started: pending.started,
            upstream: None,
        };
        let mut member_lease = None;
        let (upstream, named) = match verdict.action {
            Action::Passthrough { dest, upstream } => match dest {
                Dest::Addrs(addrs) => (addrs.first().copied(), upstream.addr),
                Dest::Pool(pool) => {
                    let sni = line.hello.sni().map(|n| n.as_ref());
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
            return self.metrics.dropped("unreachable");
        };
        let socket = match flow::connect(upstream) {
            Ok(socket) => Arc::new(socket),
            Err(error) => {
                tracing::warn!(target: "tls_sni", %client, %upstream, %error, "quic.flow.no_socket");
                return self.metrics.dropped("upstream_socket");
            }
        };
        self.next_id += 1;
        let id = self.next_id;
        let route = Route {
            worker: self.worker,
            events: self.events.clone(),
            id,
        };
        let stats = Arc::new(Stats::new());
        let reply_to = Arc::new(ArcSwap::from_pointee(client));
        let idle = pending.snapshot.generation.limits.flow_idle_timeout;
        let relay = flow::relay(
            (socket.clone(), self.socket.clone()),
            (reply_to.clone(), stats.clone()),
            (idle, self.serve.force_close.clone()),
            (self.shared.clone(), route),
            self.metrics.clone(),
        );
        let events = self.events.clone();
        let task = self.serve.tracker.spawn(async move {
            let end = relay.await;
            let _ = events.send(Event::Ended { id, end });
        });
        let flow = Flow {
            upstream: socket,
            upstream_addr: upstream,
            stats,
            reply_to,
            relay: task.abort_handle(),
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
        tracing::info!(
            target: "tls_sni", listener = &*self.name, %client, %upstream,
            replayed = pending.held.len(), "quic.flow.started"
        );
        self.keys.insert(id, client);
        self.flows.insert(client, flow);
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
    /// ID its server chose came from there): replies follow it.
    pub(super) fn moved(&mut self, id: u64, to: SocketAddr, datagram: &[u8]) {
        let Some(from) = self.keys.get(&id).copied() else {
            return self.metrics.dropped("unknown_flow");
        };
        if from != to
            && let Some(flow) = self.flows.remove(&from)
        {
            flow.reply_to.store(Arc::new(to));
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

    /// Flow `id`'s task ended.
    pub(super) fn ended(&mut self, id: u64, end: flow::End) {
        let Some(client) = self.keys.remove(&id) else {
            return;
        };
        let Some(flow) = self.flows.remove(&client) else {
            return;
        };
        self.shared.flows.fetch_sub(1, Ordering::Relaxed);
        self.metrics.flows_active.dec();
        flow.relay.abort();
        let ((up, up_bytes), (down, down_bytes)) = flow.stats.totals();
        tracing::info!(
            target: "tls_sni", listener = &*self.name, %client, upstream = %flow.upstream_addr,
            up, up_bytes, down, down_bytes, seconds = flow.stats.age().as_secs(),
            end = end.as_str(), "quic.flow.ended"
        );
        let end = match end {
            flow::End::Idle => End::IdleTimeout,
            flow::End::Shutdown => End::Shutdown,
            flow::End::Error => End::IoError,
        };
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
