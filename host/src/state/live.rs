//! The live state: what a connection reads besides its own bytes.
//!
//! A [`Generation`] is one configuration made ready (limits, allow-list,
//! certificates, listener addresses, the access log); [`Live`] pairs it with
//! the policy live with it in one atomically swapped [`Snapshot`]. Each
//! connection takes the snapshot at accept; only `control` stores a new one.
//! It is built by `control::ready` and read by the path (`path::accept`
//! takes the snapshot, `path::connection` reads it).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::policy::Policy;
pub(crate) use crate::state::generation::Generation;
use crate::state::trial::Trial;

/// A configuration generation, the policy live with it, and a candidate on
/// trial beside it, if any.
pub(crate) struct Snapshot {
    pub(crate) generation: Arc<Generation>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) trial: Option<Arc<Trial>>,
}

/// What new connections get: one pointer, swapped whole and read once per
/// accept, so no connection pairs one generation with another's policy
/// (a reload that renames a certificate and the policy naming it changes
/// both at once). Only the control task stores into it.
pub(crate) struct Live(ArcSwap<Snapshot>);

impl Live {
    pub(crate) fn new(generation: Generation, policy: Policy) -> Live {
        Live(ArcSwap::from_pointee(Snapshot {
            generation: Arc::new(generation),
            policy: Arc::new(policy),
            trial: None,
        }))
    }

    /// The current snapshot.
    pub(crate) fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub(crate) fn generation(&self) -> Arc<Generation> {
        self.load().generation.clone()
    }

    pub(crate) fn policy(&self) -> Arc<Policy> {
        self.load().policy.clone()
    }

    /// Replace both at once (a candidate on trial stays).
    pub(crate) fn store(&self, generation: Arc<Generation>, policy: Arc<Policy>) {
        let trial = self.load().trial.clone();
        self.0.store(Arc::new(Snapshot {
            generation,
            policy,
            trial,
        }));
    }

    /// Start (`Some`) or end a trial; the live policy stays.
    pub(crate) fn try_candidate(&self, trial: Option<Arc<Trial>>) {
        let now = self.load();
        let routes = trial.as_ref().and_then(|t| t.policy.routes());
        now.generation.metrics.routes_active("candidate", routes);
        self.0.store(Arc::new(Snapshot {
            generation: now.generation.clone(),
            policy: now.policy.clone(),
            trial,
        }));
    }
}
