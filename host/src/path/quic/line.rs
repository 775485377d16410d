//! A QUIC client's access log line: what it needs, kept from the
//! decision to the end of its flow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::decision::UpstreamAddr;
use crate::hello::HelloSummary;
use crate::observe::access::{ActionTaken, Record};
use crate::outcome::{End, RouteResult};
use crate::state::live::Generation;

/// What a client's access log line needs, kept from its decision to its
/// end: one line per decided client (a flow, or a reject); a client whose
/// hello never completes is counted, not logged (a spoofed source would
/// otherwise write lines at will).
pub(super) struct Line {
    pub(super) generation: Arc<Generation>,
    pub(super) listener: Arc<str>,
    pub(super) client: SocketAddr,
    /// Kept only when the access log is on: otherwise a flow that lasts
    /// for hours holds no summary (as a TCP connection's trail).
    pub(super) hello: Option<Arc<HelloSummary>>,
    pub(super) result: RouteResult,
    pub(super) policy: Arc<str>,
    pub(super) started: Instant,
    pub(super) upstream: Option<UpstreamAddr>,
}

impl Line {
    pub(super) fn finish(
        self,
        action: ActionTaken,
        bytes: (u64, u64),
        datagrams: (u64, u64),
        end: End,
    ) {
        let Some(log) = &self.generation.access else {
            return;
        };
        // Fingerprints on the worker, not on the single writer thread.
        if let Some(hello) = &self.hello {
            hello.fingerprints();
        }
        log.send(Record {
            time: SystemTime::now(),
            listener: self.listener,
            client: self.client,
            hello: self.hello,
            action,
            result: Some(self.result),
            upstream: self.upstream,
            policy_version: Some(self.policy),
            bytes_up: bytes.0,
            bytes_down: bytes.1,
            peek: Duration::ZERO,
            connect: None,
            total: self.started.elapsed(),
            end,
            datagrams: Some(datagrams),
        });
    }
}
