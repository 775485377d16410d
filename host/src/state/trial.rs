//! A candidate policy on trial beside the live one (`limen swap --shadow`).
//!
//! Once the live policy has decided a connection, its inputs go to a
//! bounded queue of the connection's worker ([`Trial::offer`]: never
//! waits; a full queue drops the sample, counted), and the candidate
//! decides them again off the connection's path (`path::shadow`). Only the
//! comparison is kept: counts, and the last differences for the status
//! page. The candidate is prepared with limits of its own, so nothing it
//! takes or acquires touches what live connections read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::IntCounter;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::hello::HelloSummary;
use crate::observe::metrics::Metrics;
use crate::outcome::ShadowOutcome;
use crate::policy::{Connection, Policy};
use crate::state::generation::Generation;

/// Samples one worker may have waiting: a burst beyond it is dropped.
const QUEUE: usize = 1024;
/// Differences kept for the status page.
const LAST: usize = 16;

/// A candidate and what it has made of live traffic so far.
pub(crate) struct Trial {
    pub(crate) policy: Arc<Policy>,
    pub(crate) tally: Arc<Tally>,
    /// One per worker; dropped with the trial, which ends its consumers.
    queues: Box<[mpsc::Sender<Sample>]>,
}

/// One decided connection's inputs, and what the live policy made of them.
pub(crate) struct Sample {
    pub(crate) conn: Connection,
    pub(crate) hello: Option<Arc<HelloSummary>>,
    /// The live decision as planned (`passthrough:...`), or `failed: ...`.
    pub(crate) live: String,
    /// The generation it was decided under: the candidate's decision is
    /// planned against the same rules.
    pub(crate) generation: Arc<Generation>,
}

/// The counts and the last differences.
pub(crate) struct Tally {
    /// This trial's (`limen_policy_shadow_total` counts every trial).
    own: [AtomicU64; ShadowOutcome::COUNT],
    counts: [IntCounter; ShadowOutcome::COUNT],
    last: Mutex<VecDeque<Difference>>,
}

/// A connection the candidate would have decided otherwise.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Difference {
    /// When (RFC 3339).
    pub at: String,
    /// The client's address.
    pub client: String,
    /// Its SNI, or `-`.
    pub sni: String,
    /// Its ALPN offer, comma separated, or `-`.
    pub alpn: String,
    /// The live decision.
    pub live: String,
    /// The candidate's (or why it failed).
    pub candidate: String,
}

impl Trial {
    /// A trial of `policy` with a queue per worker; each receiver goes to
    /// one consumer.
    pub(crate) fn new(
        policy: Arc<Policy>,
        metrics: &Metrics,
        workers: usize,
    ) -> (Trial, Vec<mpsc::Receiver<Sample>>) {
        let (queues, receivers) = (0..workers.max(1)).map(|_| mpsc::channel(QUEUE)).unzip();
        let tally = Arc::new(Tally {
            own: std::array::from_fn(|_| AtomicU64::new(0)),
            counts: metrics.shadow_counters(),
            last: Mutex::new(VecDeque::with_capacity(LAST)),
        });
        let queues: Vec<_> = queues;
        let trial = Trial {
            policy,
            tally,
            queues: queues.into_boxed_slice(),
        };
        (trial, receivers)
    }

    /// Queue `sample` on `worker`'s queue, or count it dropped: a live
    /// connection never waits for the candidate.
    pub(crate) fn offer(&self, worker: usize, sample: Sample) {
        let queue = &self.queues[worker % self.queues.len()];
        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(sample) {
            self.tally.count(ShadowOutcome::Dropped);
        }
    }
}

impl Tally {
    pub(crate) fn count(&self, outcome: ShadowOutcome) {
        self.own[outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.counts[outcome as usize].inc();
    }

    /// Keep `difference` among the last ones.
    pub(crate) fn differed(&self, difference: Difference) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.len() == LAST {
            last.pop_front();
        }
        last.push_back(difference);
    }

    /// Counts by outcome, in `ShadowOutcome::ALL` order.
    pub(crate) fn counts(&self) -> [u64; ShadowOutcome::COUNT] {
        std::array::from_fn(|i| self.own[i].load(Ordering::Relaxed))
    }

    /// The last differences, oldest first.
    pub(crate) fn last(&self) -> Vec<Difference> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.iter().cloned().collect()
    }
}
