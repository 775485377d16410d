//! The decision step, one owner for every transport: ask the policy, plan
//! its decision, apply the fail mode on any failure, resolve the upstream;
//! counted and reported here. A TCP connection (`super`) and a QUIC flow
//! (`path::quic`) both call [`decide`].

use std::sync::Arc;
use std::time::Instant;

use rustls::ServerConfig;

use super::report;
use crate::decision::UpstreamAddr;
use crate::hello::HelloSummary;
use crate::observe::metrics::ListenerMetrics;
use crate::outcome::{RouteResult, UpstreamFailure};
use crate::path::action::Action;
use crate::path::{shadow, worker};
use crate::plan::{self, Plan};
use crate::policy::limit_table::Held;
use crate::policy::{Connection, Failure, Policy};
use crate::state::config::FailMode;
use crate::state::live::Generation;
use crate::state::trial::{Sample, Trial};
use crate::upstream::pool::{Pool, PoolError};
use crate::upstream::{self, Dest, UpstreamError};

/// What [`decide`] gives: the action, the concurrency slots the policy
/// acquired (held until the connection ends) and how it is counted.
pub(crate) struct Verdict {
    pub(crate) action: Action,
    pub(crate) held: Held,
    pub(crate) result: RouteResult,
    /// The version of the policy that decided (a canary's, or the live one).
    pub(crate) version: Arc<str>,
}

/// Decide `conn` (its `hello`, if it sent one) under `generation`. With a
/// candidate on `trial`: on canary, it decides the share of clients it
/// covers (a failure is counted against it, and the live policy decides
/// instead); shadowed, the inputs and the live decision as planned go to
/// the shadow.
pub(crate) async fn decide(
    (policy, trial): (&Policy, Option<&Trial>),
    conn: &Connection,
    hello: Option<&Arc<HelloSummary>>,
    generation: &Arc<Generation>,
    listener: &ListenerMetrics,
) -> Verdict {
    let metrics = &generation.metrics;
    let mut by_candidate = None;
    let canary = trial.filter(|t| t.decides(conn.client.ip()));
    if let Some(trial) = canary {
        let candidate = ask(&trial.policy, conn, hello, generation, false).await;
        // Resolved here: a decision that cannot be carried out is the
        // candidate's failure too, and the live policy decides instead.
        let resolved = match candidate.planned {
            Ok(plan) => resolve(generation, plan).await,
            Err(failure) => Err(failure),
        };
        trial.called(true, resolved.is_err());
        if let Ok(action) = resolved {
            let version = trial.policy.version().id.clone();
            by_candidate = Some((
                (candidate.result, candidate.miss, candidate.held),
                action,
                version,
            ));
        }
    }
    let ((mut result, miss, held), resolved, version) = match by_candidate {
        Some((asked, action, version)) => (asked, Ok(action), version),
        None => {
            // The shadow covers the share the canary does not decide.
            let shadowing = trial.filter(|t| t.shadow && canary.is_none());
            let live = ask(policy, conn, hello, generation, shadowing.is_some()).await;
            if let Some(trial) = trial {
                trial.called(false, live.planned.is_err());
            }
            if let (Some(trial), Some(shown)) = (shadowing, &live.shown) {
                let sample = Sample {
                    conn: conn.clone(),
                    hello: hello.cloned(),
                    live: shown.clone(),
                    generation: Arc::clone(generation),
                };
                trial.offer(worker::index(), sample);
            }
            let resolved = match live.planned {
                Ok(plan) => resolve(generation, plan).await,
                Err(failure) => Err(failure),
            };
            let asked = (live.result, live.miss, live.held);
            (asked, resolved, policy.version().id.clone())
        }
    };
    let (action, failure) = match resolved {
        Ok(action) => match down_pool(&action) {
            // Not the policy's failure, but its decision cannot be
            // carried out: the fail mode applies, counted apart.
            Some(pool) => {
                metrics.upstream_failed(UpstreamFailure::NoMember);
                report::pool_down(conn, &pool.name);
                (fail_mode(generation).await, None)
            }
            None => (action, None),
        },
        Err(failure) => {
            metrics.policy_failed(failure.kind());
            result = RouteResult::PolicyError;
            (fail_mode(generation).await, Some(failure))
        }
    };
    listener.route(result);
    if miss && failure.is_none() {
        listener.misses.inc();
    }
    match &action {
        Action::Passthrough { upstream, .. } => metrics.routed_to(&upstream.addr),
        Action::Terminate { terminate, .. } => metrics.routed_to(&terminate.upstream.addr),
        Action::Reject(_) | Action::Unreachable(_) | Action::Challenge { .. } => {}
    }
    let hello = hello.map(Arc::as_ref);
    report::decided(conn, hello, &action, result, miss, failure.as_ref());
    Verdict {
        action,
        held,
        result,
        version,
    }
}

/// One policy's answer, planned: how it is counted, the slots it took, and
/// (`shown`) the decision as the shadow compares it.
struct Asked {
    result: RouteResult,
    miss: bool,
    held: Held,
    planned: Result<Plan<Arc<ServerConfig>>, Failure>,
    shown: Option<String>,
}

/// Ask `policy` and plan its decision against `generation`'s rules.
async fn ask(
    policy: &Policy,
    conn: &Connection,
    hello: Option<&Arc<HelloSummary>>,
    generation: &Generation,
    show: bool,
) -> Asked {
    let metrics = &generation.metrics;
    let started = Instant::now();
    let mut verdict = policy.decide(conn, hello).await;
    metrics.policy_call.observe(started.elapsed().as_secs_f64());
    let (result, miss) = match &verdict {
        Ok(verdict) => {
            metrics.policy_fuel.observe(verdict.fuel_used as f64);
            if verdict.recycled {
                metrics.policy_recycled.inc();
            }
            report::classify(&verdict.decision, verdict.rule)
        }
        Err(_) => (RouteResult::PolicyError, false),
    };
    let held = verdict
        .as_mut()
        .map(|v| std::mem::take(&mut v.held))
        .unwrap_or_default();
    // Shown before `plan` takes the decision; only when shadowing.
    let shown = show.then(|| match &verdict {
        Ok(verdict) => shadow::shown(&verdict.decision),
        Err(error) => shadow::failed(error),
    });
    let planned = verdict.map_err(Failure::Call).and_then(|verdict| {
        plan::plan(&generation.rules(), verdict.decision, hello).map_err(Failure::Refused)
    });
    let shown = match (&planned, shown) {
        (Err(Failure::Refused(refusal)), Some(_)) => Some(shadow::failed(refusal)),
        (_, shown) => shown,
    };
    Asked {
        result,
        miss,
        held,
        planned,
        shown,
    }
}

/// Turn a plan into an action: resolve its upstream (a pool is looked up;
/// its member is picked at connect time). Addresses a name resolved to
/// that the allow-list does not admit are the policy's failure; a name
/// that does not resolve is not.
async fn resolve(
    generation: &Generation,
    plan: Plan<Arc<ServerConfig>>,
) -> Result<Action, Failure> {
    let lookup = |addr: &UpstreamAddr| {
        let timeout = generation.limits.connect_timeout;
        let rules = generation.rules();
        let addr = addr.clone();
        async move {
            upstream::destination(&addr, &generation.pools, &rules, false, timeout)
                .await
                .map_err(Failure::Refused)
        }
    };
    Ok(match plan {
        Plan::Reject(alert) => Action::Reject(alert),
        Plan::Passthrough(upstream) => match lookup(&upstream.addr).await? {
            Ok(dest) => Action::Passthrough { upstream, dest },
            Err(error) => Action::Unreachable(error),
        },
        Plan::Terminate {
            terminate,
            config,
            hello,
        } => match lookup(&terminate.upstream.addr).await? {
            Ok(dest) => Action::Terminate {
                terminate: Box::new(terminate),
                config,
                hello,
                dest,
            },
            Err(error) => Action::Unreachable(error),
        },
    })
}

/// The pool an action names, if none of its members is usable.
fn down_pool(action: &Action) -> Option<&Arc<Pool>> {
    match action {
        Action::Passthrough {
            dest: Dest::Pool(pool),
            ..
        }
        | Action::Terminate {
            dest: Dest::Pool(pool),
            ..
        } if !pool.has_usable() => Some(pool),
        _ => None,
    }
}

/// The operator's `on_error`: trusted, so not planned.
async fn fail_mode(generation: &Generation) -> Action {
    let upstream = match &generation.on_error {
        FailMode::Reject(alert) => return Action::Reject(*alert),
        FailMode::Fallback(upstream) => upstream.clone(),
    };
    let (pools, rules) = (&generation.pools, generation.rules());
    let timeout = generation.limits.connect_timeout;
    match upstream::destination(&upstream.addr, pools, &rules, true, timeout).await {
        Ok(Ok(Dest::Pool(pool))) if !pool.has_usable() => {
            Action::Unreachable(PoolError::NoMember(pool.name.clone()).into())
        }
        Ok(Ok(dest)) => Action::Passthrough { upstream, dest },
        Ok(Err(error)) => Action::Unreachable(error),
        // `destination` refuses only untrusted upstreams: never met.
        Err(refusal) => Action::Unreachable(UpstreamError::NotAllowed(refusal.to_string())),
    }
}
