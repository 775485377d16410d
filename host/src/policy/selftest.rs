//! Before a policy goes live: a warm-up `route` call on every instance, then
//! the `[[policy.expect]]` self-test: real ClientHellos (made by a rustls
//! client) through the candidate's own `route`, compared with the decisions
//! the config expects. One mismatch or failure refuses the candidate.

use super::runtime::Policy;
use super::{Connection, PolicyError};
use crate::config::Expectation;
use crate::hello::{self, HelloSummary, Progress};

/// Run every sample; the number that passed (all of them) or why not.
pub(crate) async fn run(policy: &Policy, expect: &[Expectation]) -> Result<usize, PolicyError> {
    for (i, sample) in expect.iter().enumerate() {
        let what = format!(
            "expect[{i}] (sni {})",
            sample.sni.as_deref().unwrap_or("none")
        );
        let fail = |why: String| PolicyError::SelfTest(format!("{what}: {why}"));
        let hello = summary(sample).map_err(fail)?;
        let conn = Connection {
            client: sample.client,
            local: sample.local,
            listener: sample.listener.clone(),
        };
        let verdict = policy
            .decide(&conn, Some(&hello))
            .await
            .map_err(|e| fail(format!("the policy failed: {e}")))?;
        let got = verdict.decision.to_string();
        if got != sample.decision {
            return Err(fail(format!("expected {}, got {got}", sample.decision)));
        }
    }
    Ok(expect.len())
}

/// One `route` call on each warm instance, so the first connections after a
/// swap do not pay for a guest's lazy set-up (page faults, a regex engine's
/// lazily built automata): measured, that first call can take milliseconds.
/// The decisions are ignored; an instance that fails is dropped by `decide`
/// and replaced on demand, as on the connection path.
pub(crate) async fn warm(policy: &Policy, instances: usize) {
    let Ok(bytes) = hello::synthesise(Some("warm-up.limen.invalid"), &[]) else {
        return;
    };
    let Ok(Progress::Complete(framed)) = hello::frame(&bytes, bytes.len()) else {
        return;
    };
    let Ok(hello) = HelloSummary::parse(&framed) else {
        return;
    };
    let conn = Connection {
        client: ([192, 0, 2, 1], 50000).into(),
        local: ([192, 0, 2, 2], 443).into(),
        listener: "warm-up".into(),
    };
    // The pool is first in, first out: consecutive calls visit every instance.
    for _ in 0..instances {
        let _ = policy.decide(&conn, Some(&hello)).await;
    }
}

fn summary(sample: &Expectation) -> Result<HelloSummary, String> {
    let bytes = hello::synthesise(sample.sni.as_deref(), &sample.alpn)?;
    match hello::frame(&bytes, bytes.len()).map_err(|e| e.to_string())? {
        Progress::Complete(framed) => HelloSummary::parse(&framed).map_err(|e| e.to_string()),
        _ => Err("the synthesised ClientHello did not frame".into()),
    }
}
