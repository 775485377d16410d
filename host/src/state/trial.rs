//! A candidate policy on trial beside the live one: shadowed (`limen swap
//! --shadow`), on canary (`--canary PERCENT`), or both (the shadow then
//! covers the share the canary does not decide).
//!
//! On canary, the candidate decides the connections of a share of client
//! addresses, chosen by a stable hash of the address ([`bucket`]: the same
//! on every instance of a fleet, so a client sees one policy). A canary
//! call that fails (trap, fuel, deadline, memory, a decision limen would
//! refuse) is counted against the candidate and the live policy decides
//! that connection, so no client sees the failure; once the candidate's
//! failure rate exceeds the live policy's by `margin` over at least
//! `min_calls` calls, the trial is rolled back ([`Tally::rollback`]): the
//! path stops asking it at once, and the control task ends the trial.
//!
//! Once the live policy has decided a connection, its inputs go to a
//! bounded queue of the connection's worker ([`Trial::offer`]: never
//! waits; a full queue drops the sample, counted), and the candidate
//! decides them again off the connection's path (`path::shadow`). Only the
//! comparison is kept: counts, and the last differences for the status
//! page. Its shadow calls have limits of their own, so nothing they take
//! or acquire touches what real connections read; its canary calls use the
//! live limits, as the connections they decide are real.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::IntCounter;
use serde::Serialize;
use tokio::sync::{Notify, mpsc};

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
    /// Its decisions are compared with the live ones (off the path).
    pub(crate) shadow: bool,
    /// It decides a share of the clients.
    pub(crate) canary: Option<Canary>,
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

/// A canary's share and when it is rolled back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Canary {
    /// Basis points of the client addresses (0-10,000).
    pub(crate) share: u32,
    /// Candidate calls before its failure rate is judged.
    pub(crate) min_calls: u64,
    /// How far its failure rate may exceed the live policy's.
    pub(crate) margin: f64,
}

/// Canary calls, by who decided and whether the call failed.
const CANDIDATE: usize = 0;
const CANDIDATE_FAILED: usize = 1;
const LIVE: usize = 2;
const LIVE_FAILED: usize = 3;

/// The counts and the last differences.
pub(crate) struct Tally {
    /// Candidate calls, its failures, live calls, their failures (while a
    /// canary runs).
    calls: [AtomicU64; 4],
    /// Why the canary was rolled back, once it was.
    rolled_back: OnceLock<String>,
    /// Woken at the rollback: the control task ends the trial.
    pub(crate) rollback: Notify,
    /// `limen_policy_canary_total`: decided, failed, rolled back.
    canary_counts: [IntCounter; 3],
    /// The trial is over (dropped): samples still queued are not decided.
    pub(crate) ended: std::sync::atomic::AtomicBool,
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
    /// A trial of `policy` (shadowed, on `canary`, or both) with a queue
    /// per worker; each receiver goes to one consumer.
    pub(crate) fn new(
        policy: Arc<Policy>,
        (shadow, canary): (bool, Option<Canary>),
        metrics: &Metrics,
        workers: usize,
    ) -> (Trial, Vec<mpsc::Receiver<Sample>>) {
        let (queues, receivers) = (0..workers.max(1)).map(|_| mpsc::channel(QUEUE)).unzip();
        let tally = Arc::new(Tally {
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            rolled_back: OnceLock::new(),
            rollback: Notify::new(),
            canary_counts: metrics.canary_counters(),
            ended: std::sync::atomic::AtomicBool::new(false),
            own: std::array::from_fn(|_| AtomicU64::new(0)),
            counts: metrics.shadow_counters(),
            last: Mutex::new(VecDeque::with_capacity(LAST)),
        });
        let queues: Vec<_> = queues;
        let trial = Trial {
            policy,
            tally,
            shadow,
            canary,
            queues: queues.into_boxed_slice(),
        };
        (trial, receivers)
    }

    /// `shadow`, `canary 10 %`, or `canary 10 % + shadow`.
    pub(crate) fn mode(&self) -> String {
        match (self.canary, self.shadow) {
            (None, _) => "shadow".into(),
            (Some(c), false) => format!("canary {} %", f64::from(c.share) / 100.0),
            (Some(c), true) => format!("canary {} % + shadow", f64::from(c.share) / 100.0),
        }
    }

    /// Whether the candidate decides a connection from `client` (never once
    /// rolled back).
    pub(crate) fn decides(&self, client: IpAddr) -> bool {
        self.canary
            .is_some_and(|c| bucket(client) < c.share && self.tally.rolled_back.get().is_none())
    }

    /// A call was made while a canary runs, by the candidate or the live
    /// policy, and failed or not; from its `min_calls`-th call on, each of
    /// the candidate's judges it.
    pub(crate) fn called(&self, by_candidate: bool, failed: bool) {
        let Some(canary) = self.canary else { return };
        let (calls, failures) = if by_candidate {
            (CANDIDATE, CANDIDATE_FAILED)
        } else {
            (LIVE, LIVE_FAILED)
        };
        self.tally.calls[calls].fetch_add(1, Ordering::Relaxed);
        if failed {
            self.tally.calls[failures].fetch_add(1, Ordering::Relaxed);
        }
        if !by_candidate {
            return;
        }
        self.tally.canary_counts[usize::from(failed)].inc();
        let [candidate, candidate_failed, live, live_failed] = self.tally.canary();
        if candidate < canary.min_calls {
            return;
        }
        let rate = |failed: u64, calls: u64| failed as f64 / calls.max(1) as f64;
        let (theirs, ours) = (rate(candidate_failed, candidate), rate(live_failed, live));
        if theirs > ours + canary.margin {
            let why = format!(
                "failure rate {:.1} % over {candidate} calls, the live policy's {:.1} % over {live}: more than {:.1} points over",
                theirs * 100.0,
                ours * 100.0,
                canary.margin * 100.0
            );
            if self.tally.rolled_back.set(why).is_ok() {
                self.tally.canary_counts[2].inc();
                self.tally.rollback.notify_one();
            }
        }
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

impl Drop for Trial {
    fn drop(&mut self) {
        self.tally.ended.store(true, Ordering::Relaxed);
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

    /// Canary calls: the candidate's, its failures, the live policy's, its
    /// failures.
    pub(crate) fn canary(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.calls[i].load(Ordering::Relaxed))
    }

    /// Why the canary was rolled back, if it was.
    pub(crate) fn rolled_back(&self) -> Option<&str> {
        self.rolled_back.get().map(String::as_str)
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

/// Where a client address falls, 0-9,999: FNV-1a over its bytes, the same
/// on every instance and every build (std's hashers promise neither).
pub(crate) fn bucket(client: IpAddr) -> u32 {
    let fnv = |bytes: &[u8]| {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    // An IPv4 client on a dual-stack listener is the same client.
    let hash = match client.to_canonical() {
        IpAddr::V4(v4) => fnv(&v4.octets()),
        IpAddr::V6(v6) => fnv(&v6.octets()),
    };
    (hash % 10_000) as u32
}
