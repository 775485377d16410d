//! The `[[policy.expect]]` self-test: real ClientHellos (made by a rustls
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

fn summary(sample: &Expectation) -> Result<HelloSummary, String> {
    let bytes = hello::synthesise(sample.sni.as_deref(), &sample.alpn)?;
    match hello::frame(&bytes, bytes.len()).map_err(|e| e.to_string())? {
        Progress::Complete(framed) => HelloSummary::parse(&framed).map_err(|e| e.to_string()),
        _ => Err("the synthesised ClientHello did not frame".into()),
    }
}
