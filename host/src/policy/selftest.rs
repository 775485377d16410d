//! Before a policy goes live: a warm-up `route` call on every instance, then
//! the `[[policy.expect]]` self-test: real ClientHellos (made by a rustls
//! client) through the candidate's own `route`, compared with the decisions
//! the config expects. One mismatch or failure refuses the candidate.

use std::sync::Arc;

use super::limit_table::LimitTable;
use super::offline::decide_offline;
use super::runtime::Policy;
use super::settings::Expectation;
use super::{Connection, LoadError};
use crate::hello::{self, Examined, HelloSummary};

/// Run every sample; the number that passed (all of them) or why not.
pub(crate) async fn run(
    policy: &Policy,
    expect: &[Expectation],
    scratch: &Arc<LimitTable>,
) -> Result<usize, LoadError> {
    for (i, sample) in expect.iter().enumerate() {
        let what = format!(
            "expect[{i}] (sni {})",
            sample.sni.as_deref().unwrap_or("none")
        );
        let fail = |why: String| LoadError::SelfTest(format!("{what}: {why}"));
        let hello = Arc::new(summary(sample).map_err(fail)?);
        let conn = Connection {
            client: sample.client,
            local: sample.local,
            listener: sample.listener.clone(),
        };
        let rules = Some(&policy.settings().rules);
        let offline = decide_offline((policy, Some(scratch)), &conn, Some(&hello), rules)
            .await
            .map_err(|e| fail(format!("the policy failed: {e}")))?;
        let got = offline.verdict.decision.to_string();
        if got != sample.decision {
            return Err(fail(format!("expected {}, got {got}", sample.decision)));
        }
        // The decision it was expected to make must also be one limen
        // carries out, by the same rules as a live connection.
        if let Some(refusal) = offline.refused {
            return Err(fail(format!("{got} is what was expected, but {refusal}")));
        }
    }
    Ok(expect.len())
}

/// SNI of the warm-up calls (a reserved name no route should know).
const WARM_UP_SNI: &str = "warm-up.limen.invalid";

/// One `route` call on each warm instance, so the first connections after a
/// swap do not pay for a guest's lazy set-up (page faults, a regex engine's
/// lazily built automata): measured, that first call can take milliseconds.
/// Any decision, or failure, will do: refusing a candidate is the
/// self-test's job, with decisions the operator wrote down (a policy may
/// fail on purpose, to exercise the fail mode). An instance that fails is
/// dropped by `decide`, and the caller refills the pool.
pub(crate) async fn warm(policy: &Policy, scratch: &Arc<LimitTable>) -> Result<(), LoadError> {
    let sample = Expectation {
        sni: Some(WARM_UP_SNI.into()),
        alpn: Vec::new(),
        client: ([192, 0, 2, 1], 50000).into(),
        listener: "warm-up".into(),
        local: ([192, 0, 2, 2], 443).into(),
        decision: String::new(),
    };
    let hello = Arc::new(summary(&sample).map_err(LoadError::SelfTest)?);
    let conn = Connection {
        client: sample.client,
        local: sample.local,
        listener: sample.listener,
    };
    // Each pool is first in, first out: consecutive calls visit every instance.
    let mut failed = None;
    for pool in 0..policy.idle.len() {
        for _ in 0..policy.settings.instances {
            if let Err(error) = policy
                .decide_in((pool, Some(scratch)), &conn, Some(&hello))
                .await
            {
                failed.get_or_insert(error);
            }
        }
    }
    // Not a refusal, but the likeliest cause is a limit too tight for the
    // guest's language (a JavaScript decision needs ~0.9 M fuel, limen's
    // default is 1 M): say so before every connection meets `on_error`.
    if let Some(error) = failed {
        tracing::warn!(
            kind = error.kind().as_str(),
            "the warm-up route call failed ({error}); if real connections fail the same way, \
             raise [policy] fuel, timeout or memory"
        );
    }
    Ok(())
}

fn summary(sample: &Expectation) -> Result<HelloSummary, String> {
    let bytes = hello::synthesise(sample.sni.as_deref(), &sample.alpn)?;
    match hello::examine(&bytes, bytes.len()).map_err(|e| e.to_string())? {
        Examined::Hello(hello) => Ok(hello),
        _ => Err("the synthesised ClientHello did not frame".into()),
    }
}
