//! The last policy swaps and configuration reloads, applied or refused,
//! for the status page (`status`). Written by the control task only, a few times a
//! day; read per status request. A mutex is fine here: neither side is the
//! connection path.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// How many changes the page shows.
const KEPT: usize = 16;

/// The recent changes, newest first.
#[derive(Default)]
pub(crate) struct History(Mutex<VecDeque<Value>>);

impl History {
    /// Note a change: what asked (`file`, `admin`, `reload`), what came of
    /// it, the version live after it, and the refusal's code and message.
    pub(crate) fn note(
        &self,
        trigger: &str,
        outcome: &str,
        live: &str,
        refusal: Option<(&str, &str)>,
    ) {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let entry = json!({
            "at": at, "trigger": trigger, "outcome": outcome, "live": live,
            "code": refusal.map(|r| r.0), "error": refusal.map(|r| r.1),
        });
        // A poisoned lock only means a panic mid-push; the queue is whole.
        let mut changes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        changes.push_front(entry);
        changes.truncate(KEPT);
    }

    /// The changes kept, newest first.
    pub(crate) fn recent(&self) -> Vec<Value> {
        let changes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        changes.iter().cloned().collect()
    }
}
