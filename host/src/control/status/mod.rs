//! `GET /status` and `/status.json` on `[status]`'s listener: what an
//! operator looks at first. Listeners, the live policy and the last swaps
//! and refusals, route results, pools with each member's health and
//! connections, limits hit. Built on request from the live snapshot and
//! the metrics (atomics): nothing on the connection path changes for it.

mod page;
mod rates;

pub(crate) use rates::Rates;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::control::history::History;
use crate::observe::metrics::{RouteResult, names};
use crate::state::live::Live;
use crate::upstream::pool::clock;

/// The status as JSON (`/status.json`, and what the page shows).
pub(crate) fn snapshot(live: &Live, history: &History, rates: &Rates) -> Value {
    let snapshot = live.load();
    let (generation, policy) = (&snapshot.generation, &snapshot.policy);
    let metrics = &generation.metrics;
    let count = |name: &str, labels: &[(&str, &str)]| metrics.counter(name, labels);
    let listeners: Vec<Value> = generation
        .listeners
        .iter()
        .map(|(name, addr)| {
            let listener = [("listener", &**name)];
            if generation.quic.contains(name) {
                // A QUIC client counts as a connection once its hello is
                // in; the active ones are its flows open now.
                return json!({ "name": &**name, "address": addr.to_string(), "transport": "quic",
                    "connections": count(names::CONNECTIONS, &listener),
                    "active": count(names::QUIC_FLOWS_ACTIVE, &listener) });
            }
            json!({ "name": &**name, "address": addr.to_string(), "transport": "tcp",
                    "connections": count(names::CONNECTIONS, &listener),
                    "active": count(names::ACTIVE, &listener) })
        })
        .collect();
    let routes: serde_json::Map<String, Value> = RouteResult::ALL
        .iter()
        .map(|r| {
            (
                r.as_str().to_owned(),
                count(names::ROUTES, &[("result", r.as_str())]).into(),
            )
        })
        .collect();
    let now = clock();
    let pools: Vec<Value> = generation
        .pools
        .iter()
        .map(|pool| {
            let members: Vec<Value> = pool
                .members()
                .entries
                .iter()
                .map(|e| {
                    let m = &e.member;
                    let state = match (m.is_up(), m.is_ejected(now)) {
                        (false, _) => "down",
                        (true, true) => "ejected",
                        (true, false) => "up",
                    };
                    json!({ "address": m.addr.to_string(), "weight": e.weight,
                            "state": state, "connections": m.connections() })
                })
                .collect();
            json!({ "name": &*pool.name, "balance": pool.balance().name(), "members": members,
                    "retries": count(names::UPSTREAM_RETRIES, &[("pool", &pool.name)]) })
        })
        .collect();
    let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut certificates: Vec<Value> = generation
        .tls
        .certs
        .summary()
        .map(|(name, not_after, acme)| {
            let failed = [("certificate", &**name), ("outcome", "failed")];
            json!({ "name": &**name, "source": if acme { "acme" } else { "files" },
                    "state": if not_after.is_some() { "issued" } else { "pending" },
                    "not_after": not_after,
                    "days_left": not_after.map(|t| (t - unix(SystemTime::now()) as i64) / 86_400),
                    "failed_orders": count(names::ACME_ORDERS, &failed) })
        })
        .collect();
    certificates.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "generated_at": unix(SystemTime::now()),
        "generation": generation.number,
        "policy": { "version": policy.version().to_string(), "rules": policy.routes(),
                    "module": policy.settings().module.display().to_string() },
        "candidate": snapshot.trial.as_deref().map(|trial| {
            let [same, different, failed, dropped] = trial.tally.counts();
            let [decided, canary_failed, ..] = trial.tally.canary();
            json!({ "version": trial.policy.version().to_string(), "mode": trial.mode(),
                    "rules": trial.policy.routes(),
                    "same": same, "different": different, "failed": failed, "dropped": dropped,
                    "canary_decided": decided, "canary_failed": canary_failed,
                    "last": trial.tally.last() })
        }),
        "listeners": listeners,
        "changes": history.recent(),
        "routes": routes,
        "pools": pools,
        "certificates": certificates,
        "limits": {
            "rate_limited": count(names::POLICY_LIMITED, &[("kind", "rate")]),
            "slots_full": count(names::POLICY_LIMITED, &[("kind", "slots")]),
            "evicted": count(names::POLICY_LIMIT_EVICTIONS, &[]),
        },
        "upstream_failures": count(names::UPSTREAM_FAILURES, &[]),
        "rates": rates.json(),
        "bytes": { "up": count(names::BYTES, &[("direction", "up")]),
                   "down": count(names::BYTES, &[("direction", "down")]) },
    })
}

/// The page (`json`: false) or the JSON, as text.
pub(crate) fn render(live: &Live, history: &History, rates: &Rates, json: bool) -> String {
    let status = snapshot(live, history, rates);
    if json {
        serde_json::to_string_pretty(&status).unwrap_or_default()
    } else {
        page::html(&status)
    }
}
