//! The process's own life: hand-overs to a new process (`limen upgrade`).

use prometheus::IntCounterVec;

use super::{Metrics, names};

pub(super) fn upgrades(counters: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec) -> IntCounterVec {
    counters(
        names::UPGRADES,
        "Hand-overs of the listening sockets to a new process, by outcome.",
        &["outcome"],
    )
}

impl Metrics {
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
