//! Changes to the running process beside swaps and reloads: hand-overs to
//! a new process (`limen upgrade`), and a candidate policy on trial.

use prometheus::{IntCounter, IntCounterVec};

use super::{Metrics, names};
use crate::outcome::ShadowOutcome;

pub(super) fn upgrades(counters: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec) -> IntCounterVec {
    counters(
        names::UPGRADES,
        "Hand-overs of the listening sockets to a new process, by outcome.",
        &["outcome"],
    )
}

pub(super) fn shadow(counters: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec) -> IntCounterVec {
    counters(
        names::POLICY_SHADOW,
        "A shadowed candidate's decisions against the live policy's, by outcome.",
        &["outcome"],
    )
}

pub(super) fn canary(counters: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec) -> IntCounterVec {
    counters(
        names::POLICY_CANARY,
        "A candidate on canary: connections it decided, its failed calls, rollbacks.",
        &["outcome"],
    )
}

impl Metrics {
    /// The rules the `live` or `candidate` policy holds (`None`: it did not
    /// say, or there is no candidate: the series goes).
    pub(crate) fn routes_active(&self, policy: &str, routes: Option<u32>) {
        match routes {
            Some(count) => self
                .routes_active
                .with_label_values(&[policy])
                .set(i64::from(count)),
            None => drop(self.routes_active.remove_label_values(&[policy])),
        }
    }

    /// The canary counters: connections the candidate decided, its calls
    /// that failed (the live policy decided those), rollbacks.
    pub(crate) fn canary_counters(&self) -> [IntCounter; 3] {
        ["decided", "failed", "rolled_back"].map(|o| self.canary.with_label_values(&[o]))
    }

    /// The shadow counters, one per [`ShadowOutcome`] (resolved when a
    /// candidate is shadowed).
    pub(crate) fn shadow_counters(&self) -> [IntCounter; ShadowOutcome::COUNT] {
        ShadowOutcome::ALL.map(|o| self.shadow.with_label_values(&[o.as_str()]))
    }

    /// A hand-over ended: the new process took over, or it refused (this
    /// one serves on).
    pub(crate) fn upgrade(&self, handed_over: bool) {
        let outcome = if handed_over {
            "handed_over"
        } else {
            "refused"
        };
        self.upgrades.with_label_values(&[outcome]).inc();
    }
}
