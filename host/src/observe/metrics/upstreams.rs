//! `limen_upstream_routed_total{upstream}` with a bounded label set: the
//! policy names upstreams, and an untrusted policy (or a regex route built
//! from the SNI) could otherwise mint a series per connection. The first
//! `cap` distinct upstreams get their own series; the rest count under
//! `upstream="other"`.
//!
//! Reads are a lock-free load of an immutable map; only adding an upstream
//! (at most `cap` times in limen's life) copies the map under a mutex.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use prometheus::{IntCounter, IntCounterVec};

use crate::decision::UpstreamAddr;

/// The label value for upstreams past the cap.
pub const OTHER: &str = "other";

pub(crate) struct UpstreamLabels {
    family: IntCounterVec,
    known: ArcSwap<HashMap<UpstreamAddr, IntCounter>>,
    other: IntCounter,
    adding: Mutex<()>,
    cap: usize,
}

impl UpstreamLabels {
    pub(crate) fn new(family: IntCounterVec, cap: usize) -> UpstreamLabels {
        UpstreamLabels {
            other: family.with_label_values(&[OTHER]),
            family,
            known: ArcSwap::from_pointee(HashMap::new()),
            adding: Mutex::new(()),
            cap,
        }
    }

    /// Count one connection routed to `upstream`.
    pub(crate) fn inc(&self, upstream: &UpstreamAddr) {
        if let Some(counter) = self.known.load().get(upstream) {
            counter.inc();
            return;
        }
        self.add(upstream).inc();
    }

    fn add(&self, upstream: &UpstreamAddr) -> IntCounter {
        // A poisoned lock only means another thread panicked mid-insert; the
        // map it guards is replaced whole, so it is never half-written.
        let _adding = self.adding.lock().unwrap_or_else(|p| p.into_inner());
        let known = self.known.load_full();
        if let Some(counter) = known.get(upstream) {
            return counter.clone();
        }
        if known.len() >= self.cap {
            return self.other.clone();
        }
        let counter = self.family.with_label_values(&[upstream.to_string()]);
        let mut next = HashMap::clone(&known);
        next.insert(upstream.clone(), counter.clone());
        self.known.store(Arc::new(next));
        counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    #[test]
    fn past_the_cap_upstreams_share_other() {
        let family = IntCounterVec::new(Opts::new("t", "t"), &["upstream"]).unwrap();
        let labels = UpstreamLabels::new(family.clone(), 2);
        for upstream in [
            "a.test:1", "b.test:1", "a.test:1", "c.test:1", "d.test:1", "b.test:1",
        ] {
            labels.inc(&UpstreamAddr::parse(upstream).unwrap());
        }
        let value = |l: &str| family.with_label_values(&[l]).get();
        assert_eq!((value("a.test:1"), value("b.test:1")), (2, 2));
        assert_eq!((value("c.test:1"), value(OTHER)), (0, 2));
    }
}
