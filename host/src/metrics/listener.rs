//! Handles for one listener's labelled series, resolved when its accept loop
//! starts so a connection never looks a label up (a labelled lookup hashes
//! the values and takes the family's read lock).

use std::sync::Arc;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::Metrics;

/// How the policy's decision classifies a connection, for
/// `limen_tls_sni_route_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteResult {
    /// Routed by a rule naming the SNI exactly.
    Exact,
    /// Routed by a wildcard or suffix rule.
    Wildcard,
    /// Routed by a regex rule.
    Regex,
    /// Routed by the policy's default (no rule matched, or no SNI).
    Fallback,
    /// Routed, and the policy did not say by which kind of rule.
    Unreported,
    /// The policy rejected the connection.
    Reject,
    /// The policy failed (or its decision was refused): the fail mode applied.
    PolicyError,
}

impl RouteResult {
    /// Every result, in label order.
    pub const ALL: [RouteResult; 7] = [
        RouteResult::Exact,
        RouteResult::Wildcard,
        RouteResult::Regex,
        RouteResult::Fallback,
        RouteResult::Unreported,
        RouteResult::Reject,
        RouteResult::PolicyError,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            RouteResult::Exact => "exact",
            RouteResult::Wildcard => "wildcard",
            RouteResult::Regex => "regex",
            RouteResult::Fallback => "fallback",
            RouteResult::Unreported => "unreported",
            RouteResult::Reject => "reject",
            RouteResult::PolicyError => "policy_error",
        }
    }
}

/// What a connection is doing, for `limen_connections_active{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Accepted, not yet decided (peeking, asking the policy, resolving).
    Pending,
    Passthrough,
    Terminate,
    Reject,
}

impl Stage {
    const ALL: [Stage; 4] = [
        Stage::Pending,
        Stage::Passthrough,
        Stage::Terminate,
        Stage::Reject,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::Pending => "pending",
            Stage::Passthrough => "passthrough",
            Stage::Terminate => "terminate",
            Stage::Reject => "reject",
        }
    }
}

/// ClientHello failures counted per listener, in label order.
pub(crate) const PARSE_REASONS: [&str; 6] = [
    "timeout",
    "too_large",
    "malformed",
    "not_tls",
    "closed",
    "io_error",
];

/// One listener's series.
pub(crate) struct ListenerMetrics {
    pub(crate) accepted: IntCounter,
    routes: [IntCounter; 7],
    pub(crate) misses: IntCounter,
    parse_failures: [IntCounter; 6],
    pub(crate) peek_duration: Histogram,
    active: [IntGauge; 4],
}

impl ListenerMetrics {
    pub(crate) fn new(metrics: &Metrics, listener: &str) -> ListenerMetrics {
        ListenerMetrics {
            accepted: metrics.connections.with_label_values(&[listener]),
            routes: RouteResult::ALL
                .map(|r| metrics.routes.with_label_values(&[listener, r.name()])),
            misses: metrics.misses.with_label_values(&[listener]),
            parse_failures: PARSE_REASONS.map(|reason| {
                metrics
                    .parse_failures
                    .with_label_values(&[listener, reason])
            }),
            peek_duration: metrics.peek_duration.with_label_values(&[listener]),
            active: Stage::ALL.map(|s| metrics.active.with_label_values(&[listener, s.name()])),
        }
    }

    pub(crate) fn route(&self, result: RouteResult) {
        self.routes[result as usize].inc();
    }

    /// Count a ClientHello failure; `reason` is one of [`PARSE_REASONS`].
    pub(crate) fn parse_failed(&self, reason: &str) {
        if let Some(i) = PARSE_REASONS.iter().position(|r| *r == reason) {
            self.parse_failures[i].inc();
        }
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
