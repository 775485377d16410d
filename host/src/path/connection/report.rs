//! What a connection tells the world besides its bytes: the result its
//! decision counts as, its `tls_sni` events (the message is the event's
//! name), and the access log record it leaves when it ends.

use crate::decision::{Alert, Decision, Rule};
use crate::hello::HelloSummary;
use crate::observe::log_limit::LogLimit;
use crate::outcome::{ParseFailure, PolicyFailure, RouteResult};
use crate::path::action::Action;

/// Warnings and per-connection INFO events of one kind logged per second at
/// most; metrics count every one.
const EVENTS_PER_SECOND: u32 = 5;
use crate::policy::{Connection, Failure};

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
    failure: Option<&Failure>,
) {
    let (listener, client) = (&*conn.listener, conn.client);
    let sni = hello.and_then(|h| h.sni()).map(|n| n.as_ref());
    if hello.is_some() && sni.is_none() {
        tracing::debug!(target: "tls_sni", listener, %client, "tls.no_sni");
    }
    if let Some(error) = failure {
        // Counted exactly in `limen_policy_failures_total`; logged a few
        // times a second per kind at most.
        static FAILED: [LogLimit; PolicyFailure::COUNT] =
            [const { LogLimit::new(EVENTS_PER_SECOND) }; PolicyFailure::COUNT];
        let kind = error.kind();
        if let Some(suppressed) = FAILED[kind as usize].allow() {
            tracing::warn!(
                target: "tls_sni", listener, %client, sni, kind = kind.as_str(), %error,
                suppressed, "policy.failed"
            );
        }
    }
    let result = result.as_str();
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
        Action::Unreachable(_) | Action::Challenge { .. } => {}
    }
}

/// A decision named a pool none of whose members is usable: the fail mode
/// applies. Throttled: a pool down under load would write one per connection.
pub(super) fn pool_down(conn: &Connection, pool: &str) {
    static DOWN: LogLimit = LogLimit::new(EVENTS_PER_SECOND);
    if let Some(suppressed) = DOWN.allow() {
        tracing::warn!(
            target: "tls_sni", listener = &*conn.listener, client = %conn.client, pool,
            suppressed, "upstream.pool_down"
        );
    }
}

/// A ClientHello that could not be gathered: `tls.client_hello_timeout` or
/// `tls.parse_failed`. Health checks (connect, close) and plain-text
/// clients are routine, so those are debug.
pub(super) fn peek_failed(conn: &Connection, reason: ParseFailure, error: &dyn std::fmt::Display) {
    // A slowloris or a scanner makes these by the thousand: the metric
    // counts each, the log a few a second per reason.
    static FAILED: [LogLimit; ParseFailure::COUNT] =
        [const { LogLimit::new(EVENTS_PER_SECOND) }; ParseFailure::COUNT];
    let (listener, client) = (&*conn.listener, conn.client);
    let suppressed = match reason {
        ParseFailure::Closed => 0,
        _ => match FAILED[reason as usize].allow() {
            Some(suppressed) => suppressed,
            None => return,
        },
    };
    match reason {
        ParseFailure::Timeout => {
            tracing::info!(target: "tls_sni", listener, %client, %error, suppressed, "tls.client_hello_timeout")
        }
        ParseFailure::Closed => {
            let reason = reason.as_str();
            tracing::debug!(target: "tls_sni", listener, %client, reason, %error, "tls.parse_failed")
        }
        _ => {
            let reason = reason.as_str();
            tracing::info!(target: "tls_sni", listener, %client, reason, %error, suppressed, "tls.parse_failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Upstream, UpstreamAddr};

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
