//! Putting each case to the policy, one after another, on one instance
//! (a failing call replaces it, as in production).

use std::path::Path;
use std::sync::Arc;

use super::file::{Case, CaseFile, CaseHello, Expected};
use crate::decision::Rule;
use crate::hello::{self, Examined, HelloSummary};
use crate::policy::{Connection, Failure, Policy, decide_offline};
use crate::state::config::{DEFAULT_HELLO_MAX_BYTES, OfflineRules};

/// What one case came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Position in the file, from 1.
    pub index: usize,
    /// The case's name.
    pub name: String,
    /// What the file expects, as text (`error:KIND` for a failure).
    pub expected: String,
    /// What happened, in the same form.
    pub got: String,
    /// The rule kind the file expects, if it says.
    pub expected_rule: Option<Rule>,
    /// The rule kind the policy reported.
    pub got_rule: Option<Rule>,
    /// The policy's error message, or why the case could not run.
    pub detail: Option<String>,
    /// Fuel the call used, when it returned.
    pub fuel_used: Option<u64>,
}

impl Outcome {
    /// The decision (or failure) and, if the case names one, the rule match.
    pub fn passed(&self) -> bool {
        self.expected == self.got
            && self
                .expected_rule
                .is_none_or(|rule| Some(rule) == self.got_rule)
    }
}

/// Run every case; `base` is the directory `hello_file` paths are relative to.
/// With `rules` (from the limen config the policy runs under), each decision
/// is also planned as a live connection's would be: one limen would refuse
/// comes out as `error:invalid_decision`, with the refusal as its detail.
pub async fn run(
    policy: &Policy,
    file: &CaseFile,
    base: &Path,
    rules: Option<&OfflineRules>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(file.cases.len());
    for (i, case) in file.cases.iter().enumerate() {
        let mut outcome = Outcome {
            index: i + 1,
            name: case.name.clone(),
            expected: match &case.expect {
                Expected::Decision(text) => text.clone(),
                Expected::Error(kind) => format!("error:{kind}"),
            },
            got: String::new(),
            expected_rule: case.rule,
            got_rule: None,
            detail: None,
            fuel_used: None,
        };
        match hello_of(case, base) {
            Err(why) => {
                outcome.got = "no decision".into();
                outcome.detail = Some(why);
            }
            Ok(hello) => {
                let conn = Connection {
                    client: case.client,
                    local: case.local,
                    listener: case.listener.as_str().into(),
                };
                let hello = hello.map(Arc::new);
                let planned =
                    match decide_offline((policy, None), &conn, hello.as_ref(), rules).await {
                        Ok(offline) => {
                            outcome.got_rule = offline.verdict.rule;
                            outcome.fuel_used = Some(offline.verdict.fuel_used);
                            match offline.refused {
                                None => Ok(offline.verdict.decision),
                                Some(refusal) => Err(Failure::Refused(refusal)),
                            }
                        }
                        Err(error) => Err(Failure::Call(error)),
                    };
                match planned {
                    Ok(decision) => outcome.got = decision.to_string(),
                    Err(failure) => {
                        outcome.got = format!("error:{}", failure.kind().as_str());
                        outcome.detail = Some(failure.to_string());
                    }
                }
            }
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// The summary the policy sees, `None` for a connection that is not TLS.
fn hello_of(case: &Case, base: &Path) -> Result<Option<HelloSummary>, String> {
    let bytes = match &case.hello {
        CaseHello::NotTls => return Ok(None),
        CaseHello::Synthesised { sni, alpn } => hello::synthesise(sni.as_deref(), alpn)?,
        CaseHello::Bytes(bytes) => bytes.clone(),
        CaseHello::File(path) => {
            let path = base.join(path);
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
    };
    // limen's default cap, so a hello limen would refuse live fails here too.
    match hello::examine(&bytes, DEFAULT_HELLO_MAX_BYTES) {
        Ok(Examined::Hello(hello)) => Ok(Some(hello)),
        Ok(Examined::NotTls) => Ok(None),
        Ok(Examined::NeedMore) => Err(Examined::INCOMPLETE.into()),
        Err(error) => Err(format!("the hello is refused: {error}")),
    }
}
