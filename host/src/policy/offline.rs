//! One decision as limen would take it, without a socket: the policy's
//! verdict, then limen's rules (`plan`) against a configuration's offline
//! rules. `limen explain`, `limen test` and the `[[policy.expect]]`
//! self-test all call [`decide_offline`], so none of them can promise what
//! another (or production, which plans the same way against its
//! generation) would refuse.

use std::sync::Arc;

use super::limit_table::LimitTable;
use super::{CallError, Connection, Policy, Verdict};
use crate::hello::HelloSummary;
use crate::plan::{self, OfflineRules, Refusal};

/// A verdict, and whether limen would carry its decision out.
pub struct Offline {
    /// What the policy said (its decision, fuel, rule).
    pub verdict: Verdict,
    /// `Some`: limen would refuse the decision (so the fail mode applies).
    pub refused: Option<Refusal>,
}

/// Ask `policy` about `conn` (its limits `apart`, if given: see
/// [`Policy::decide_apart`]) and plan its decision against `rules` (with
/// none, the decision is taken as it is).
pub async fn decide_offline(
    (policy, apart): (&Policy, Option<&Arc<LimitTable>>),
    conn: &Connection,
    hello: Option<&Arc<HelloSummary>>,
    rules: Option<&OfflineRules>,
) -> Result<Offline, CallError> {
    let verdict = match apart {
        Some(limits) => policy.decide_apart(limits, conn, hello).await?,
        None => policy.decide(conn, hello).await?,
    };
    let refused = rules
        .and_then(|rules| plan::plan(&plan::offline(rules), verdict.decision.clone(), hello).err());
    Ok(Offline { verdict, refused })
}
