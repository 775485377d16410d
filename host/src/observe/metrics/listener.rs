//! Handles for one listener's labelled series, resolved when its accept loop
//! starts so a connection never looks a label up (a labelled lookup hashes
//! the values and takes the family's read lock).

use std::sync::Arc;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::Metrics;
use crate::outcome::{HandshakeFailure, ParseFailure, RouteResult, Stage};

/// One listener's series.
pub(crate) struct ListenerMetrics {
    accepted: IntCounter,
    /// This worker's share of every listener's connections.
    worker_accepted: IntCounter,
    routes: [IntCounter; RouteResult::COUNT],
    pub(crate) misses: IntCounter,
    parse_failures: [IntCounter; ParseFailure::COUNT],
    handshake_failures: [IntCounter; HandshakeFailure::COUNT],
    pub(crate) peek_duration: Histogram,
    active: [IntGauge; Stage::COUNT],
}

impl ListenerMetrics {
    pub(crate) fn new(metrics: &Metrics, listener: &str, worker: usize) -> ListenerMetrics {
        ListenerMetrics {
            accepted: metrics.connections.with_label_values(&[listener]),
            worker_accepted: metrics
                .worker_connections
                .with_label_values(&[&worker.to_string()]),
            routes: RouteResult::ALL
                .map(|r| metrics.routes.with_label_values(&[listener, r.as_str()])),
            misses: metrics.misses.with_label_values(&[listener]),
            parse_failures: ParseFailure::ALL.map(|reason| {
                metrics
                    .parse_failures
                    .with_label_values(&[listener, reason.as_str()])
            }),
            handshake_failures: HandshakeFailure::ALL.map(|reason| {
                metrics
                    .handshake_failures
                    .with_label_values(&[listener, reason.as_str()])
            }),
            peek_duration: metrics.peek_duration.with_label_values(&[listener]),
            active: Stage::ALL.map(|s| metrics.active.with_label_values(&[listener, s.as_str()])),
        }
    }

    /// Count a connection this worker accepted.
    pub(crate) fn accepted(&self) {
        self.accepted.inc();
        self.worker_accepted.inc();
    }

    pub(crate) fn route(&self, result: RouteResult) {
        self.routes[result as usize].inc();
    }

    /// Count a ClientHello that did not reach the policy (or was not TLS).
    pub(crate) fn parse_failed(&self, reason: ParseFailure) {
        self.parse_failures[reason as usize].inc();
    }

    /// Count a terminated handshake that failed.
    pub(crate) fn handshake_failed(&self, reason: HandshakeFailure) {
        self.handshake_failures[reason as usize].inc();
    }
}

/// A connection's place in `limen_connections_active`: it moves between
/// stages and leaves the gauge when dropped, however the connection ends.
pub(crate) struct Active {
    metrics: Arc<ListenerMetrics>,
    stage: Stage,
}

impl Active {
    pub(crate) fn new(metrics: Arc<ListenerMetrics>) -> Active {
        metrics.active[Stage::Pending as usize].inc();
        Active {
            metrics,
            stage: Stage::Pending,
        }
    }

    pub(crate) fn enter(&mut self, stage: Stage) {
        self.metrics.active[self.stage as usize].dec();
        self.metrics.active[stage as usize].inc();
        self.stage = stage;
    }

    pub(crate) fn metrics(&self) -> &ListenerMetrics {
        &self.metrics
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.metrics.active[self.stage as usize].dec();
    }
}
