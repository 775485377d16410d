//! What a connection tells the world besides its bytes: the result its
//! decision counts as, its `tls_sni` events (the message is the event's
//! name), and the access log record it leaves when it ends.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::Action;
use crate::access::{self, Record};
use crate::decision::{Alert, Decision, Rule, UpstreamAddr};
use crate::hello::HelloSummary;
use crate::metrics::RouteResult;
use crate::policy::{Connection, PolicyError};
use crate::server::Shared;

/// How a decision counts in `limen_tls_sni_route_total`, and whether it is a
/// miss (no rule, no default: dropped). A policy that never reports its rule
/// still has its misses counted when it rejects with `unrecognized_name`,
/// the alert for "no such name".
pub(super) fn classify(decision: &Decision, rule: Option<Rule>) -> (RouteResult, bool) {
    match (decision, rule) {
        (Decision::Reject(_), Some(Rule::NoMatch)) => (RouteResult::Reject, true),
        (Decision::Reject(Alert::UnrecognizedName), None) => (RouteResult::Reject, true),
        (Decision::Reject(_), _) => (RouteResult::Reject, false),
        (_, Some(Rule::Exact)) => (RouteResult::Exact, false),
        (_, Some(Rule::Wildcard)) => (RouteResult::Wildcard, false),
        (_, Some(Rule::Regex)) => (RouteResult::Regex, false),
        (_, Some(Rule::Fallback)) => (RouteResult::Fallback, false),
        (_, Some(Rule::NoMatch) | None) => (RouteResult::Unreported, false),
    }
}

/// The decision's event: `tls.sni_routed`, `tls.sni_no_match`,
/// `tls.rejected` (plus `tls.no_sni` and `policy.failed` when they apply).
pub(super) fn decided(
    conn: &Connection,
    hello: Option<&HelloSummary>,
    action: &Action,
    result: RouteResult,
    miss: bool,
    failure: Option<&PolicyError>,
) {
    let (listener, client) = (&*conn.listener, conn.client);
    let sni = hello.and_then(|h| h.sni()).map(|n| n.as_ref());
    if hello.is_some() && sni.is_none() {
        tracing::debug!(target: "tls_sni", listener, %client, "tls.no_sni");
    }
    if let Some(error) = failure {
        tracing::warn!(
            target: "tls_sni", listener, %client, sni, kind = error.kind(), %error,
            "policy.failed"
        );
    }
    let result = result.name();
    match action {
        Action::Reject(alert) if miss => {
            tracing::info!(target: "tls_sni", listener, %client, sni, alert = alert.name(), "tls.sni_no_match");
        }
        Action::Reject(alert) => {
            tracing::info!(target: "tls_sni", listener, %client, sni, alert = alert.name(), result, "tls.rejected");
        }
        Action::Passthrough { upstream, .. } => {
            tracing::debug!(
                target: "tls_sni", listener, %client, sni, result, action = "passthrough",
                upstream = %upstream.addr, "tls.sni_routed"
            );
        }
        Action::Terminate { terminate, .. } => {
            tracing::debug!(
                target: "tls_sni", listener, %client, sni, result, action = "terminate",
                certificate = terminate.certificate, upstream = %terminate.upstream.addr,
                "tls.sni_routed"
            );
        }
        Action::Unreachable(_) => {}
    }
}

/// A ClientHello that could not be gathered: `tls.client_hello_timeout` or
/// `tls.parse_failed`. Health checks (connect, close) and plain-text
/// clients are routine, so those are debug.
pub(super) fn peek_failed(conn: &Connection, reason: &str, error: &dyn std::fmt::Display) {
    let (listener, client) = (&*conn.listener, conn.client);
    match reason {
        "timeout" => {
            tracing::info!(target: "tls_sni", listener, %client, %error, "tls.client_hello_timeout")
        }
        "closed" => {
            tracing::debug!(target: "tls_sni", listener, %client, reason, %error, "tls.parse_failed")
        }
        _ => {
            tracing::info!(target: "tls_sni", listener, %client, reason, %error, "tls.parse_failed")
        }
    }
}

/// What the access log line needs, gathered as the connection goes.
pub(super) struct Trail {
    pub(super) start: Instant,
    pub(super) peek: Duration,
    pub(super) hello: Option<HelloSummary>,
    pub(super) result: Option<RouteResult>,
    pub(super) policy_version: Option<Arc<str>>,
    pub(super) action: access::Action,
    pub(super) upstream: Option<UpstreamAddr>,
    pub(super) connect: Option<Duration>,
}

impl Trail {
    pub(super) fn new(start: Instant) -> Trail {
        Trail {
            start,
            peek: Duration::ZERO,
            hello: None,
            result: None,
            policy_version: None,
            action: access::Action::None,
            upstream: None,
            connect: None,
        }
    }

    /// The connection is over: hand its line to the access log, if on.
    pub(super) fn finish(
        self,
        shared: &Shared,
        conn: &Connection,
        bytes: (u64, u64),
        end: &'static str,
    ) {
        let Some(log) = &shared.access else {
            return;
        };
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
            bytes_up: bytes.0,
            bytes_down: bytes.1,
            peek: self.peek,
            connect: self.connect,
            end,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Upstream;

    #[test]
    fn results_follow_the_reported_rule_and_rejects_stay_rejects() {
        let up = Decision::Passthrough(Upstream {
            addr: UpstreamAddr::parse("127.0.0.1:1").unwrap(),
            proxy_protocol: None,
            connect_timeout: None,
            proxy_tlvs: Default::default(),
        });
        let deny = Decision::Reject(Alert::AccessDenied);
        let unknown = Decision::Reject(Alert::UnrecognizedName);
        let cases = [
            (&up, Some(Rule::Exact), RouteResult::Exact, false),
            (&up, Some(Rule::Wildcard), RouteResult::Wildcard, false),
            (&up, Some(Rule::Regex), RouteResult::Regex, false),
            (&up, Some(Rule::Fallback), RouteResult::Fallback, false),
            (&up, None, RouteResult::Unreported, false),
            (&deny, Some(Rule::Exact), RouteResult::Reject, false),
            (&deny, Some(Rule::NoMatch), RouteResult::Reject, true),
            (&unknown, None, RouteResult::Reject, true),
            (&unknown, Some(Rule::Exact), RouteResult::Reject, false),
        ];
        for (decision, rule, result, miss) in cases {
            assert_eq!(
                classify(decision, rule),
                (result, miss),
                "{decision} {rule:?}"
            );
        }
    }
}
