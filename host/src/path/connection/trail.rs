//! What a connection's access log line needs, gathered stage by stage.
//!
//! The trail lives outside the stages (in `handle`), so however the
//! connection ends (finished, failed, or cut when the shutdown grace runs
//! out) it is finished exactly once: one line per accepted connection.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::decision::UpstreamAddr;
use crate::hello::HelloSummary;
use crate::observe::access::{self, Record};
use crate::outcome::{End, RouteResult};
use crate::policy::Connection;
use crate::state::live::Generation;

/// The record under construction. Each stage writes what it learnt
/// through one method; nothing is copied for the log that the connection
/// does not already own.
pub(super) struct Trail {
    start: Instant,
    peek: Duration,
    hello: Option<Arc<HelloSummary>>,
    result: Option<RouteResult>,
    policy_version: Option<Arc<str>>,
    action: access::ActionTaken,
    upstream: Option<UpstreamAddr>,
    connect: Option<Duration>,
    bytes: (u64, u64),
    /// `None` until a stage says how the connection ended; a trail finished
    /// without one was cut by the end of the shutdown grace.
    end: Option<End>,
}

impl Trail {
    pub(super) fn new() -> Trail {
        Trail {
            start: Instant::now(),
            peek: Duration::ZERO,
            hello: None,
            result: None,
            policy_version: None,
            action: access::ActionTaken::None,
            upstream: None,
            connect: None,
            bytes: (0, 0),
            end: None,
        }
    }

    /// The hello (if TLS) is gathered, after `took`.
    pub(super) fn peeked(&mut self, took: Duration, hello: Option<HelloSummary>) {
        self.peek = took;
        self.hello = hello.map(Arc::new);
    }

    /// The action has read what it needs of the hello: keep it only for
    /// the access log line, so that, without one, a connection that pipes
    /// for hours holds no summary.
    pub(super) fn hello_read(&mut self, generation: &Generation) {
        if generation.access.is_none() {
            self.hello = None;
        }
    }

    /// The ClientHello, once peeked.
    pub(super) fn hello(&self) -> Option<&Arc<HelloSummary>> {
        self.hello.as_ref()
    }

    /// The decision counted as `result`, made by policy `version`.
    pub(super) fn decided(&mut self, result: RouteResult, version: Arc<str>) {
        self.result = Some(result);
        self.policy_version = Some(version);
    }

    /// What limen is doing with it, and where to.
    pub(super) fn acting(&mut self, action: access::ActionTaken, upstream: Option<UpstreamAddr>) {
        self.action = action;
        self.upstream = upstream;
    }

    /// The upstream connected after `took`.
    pub(super) fn connected(&mut self, took: Duration) {
        self.connect = Some(took);
    }

    /// The connection is over: `bytes` moved each way, ended by `end`.
    pub(super) fn ended(&mut self, bytes: (u64, u64), end: End) {
        self.bytes = bytes;
        self.end = Some(end);
    }

    /// Hand the line to the access log, if on.
    pub(super) fn finish(self, generation: &Generation, conn: &Connection) {
        let Some(log) = &generation.access else {
            return;
        };
        // The line carries JA4 and JA3: compute them here, on the worker,
        // not on the single writer thread.
        if let Some(hello) = &self.hello {
            hello.fingerprints();
        }
        log.send(Record {
            time: SystemTime::now(),
            total: self.start.elapsed(),
            listener: conn.listener.clone(),
            client: conn.client,
            hello: self.hello,
            action: self.action,
            result: self.result,
            upstream: self.upstream,
            policy_version: self.policy_version,
            bytes_up: self.bytes.0,
            bytes_down: self.bytes.1,
            peek: self.peek,
            connect: self.connect,
            end: self.end.unwrap_or(End::Shutdown),
            datagrams: None,
        });
    }
}
