//! Admin connections that have not yet sent an authorised request: each has
//! a short deadline for its request line, and there are at most
//! `MAX_WAITING` of them. A new one beyond the cap evicts the oldest, so idle
//! sockets (held by any local user, over TCP) cannot lock the operator out:
//! a real client sends its line at once and leaves the waiting set within
//! microseconds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Time an admin client has to send its request line (the module, for a
/// swap, follows under its own deadline once the line is authorised).
pub(super) const LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections waiting to send their line, at most.
pub(super) const MAX_WAITING: usize = 16;

/// The waiting set, oldest first. Admin traffic only, never the connection
/// path, so a mutex is fine.
#[derive(Default)]
pub(super) struct Gate {
    waiting: Mutex<VecDeque<(u64, CancellationToken)>>,
    next: AtomicU64,
}

/// One waiting connection; leaves the set when dropped (authorised, refused
/// or gone).
pub(super) struct Waiting {
    gate: Arc<Gate>,
    id: u64,
    /// Cancelled when a newer connection evicts this one.
    pub(super) evicted: CancellationToken,
}

impl Gate {
    /// Admit a new connection, evicting the oldest waiting one if full.
    pub(super) fn admit(self: &Arc<Gate>) -> Waiting {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        while waiting.len() >= MAX_WAITING {
            if let Some((_, oldest)) = waiting.pop_front() {
                oldest.cancel();
            }
        }
        waiting.push_back((id, evicted.clone()));
        Waiting {
            gate: self.clone(),
            id,
            evicted,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut waiting = self
            .gate
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = waiting.iter().position(|(id, _)| *id == self.id) {
            waiting.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_connection_is_evicted_and_leavers_free_their_place() {
        let gate = Arc::new(Gate::default());
        let first = gate.admit();
        let rest: Vec<_> = (1..MAX_WAITING).map(|_| gate.admit()).collect();
        assert_eq!(gate.len(), MAX_WAITING);
        assert!(!first.evicted.is_cancelled());
        let newest = gate.admit();
        assert!(first.evicted.is_cancelled(), "the oldest makes room");
        assert!(!rest[0].evicted.is_cancelled() && !newest.evicted.is_cancelled());
        assert_eq!(gate.len(), MAX_WAITING);
        drop(rest);
        assert_eq!(gate.len(), 1, "only the newest still waits");
        drop(first); // already evicted: nothing left to remove
        assert_eq!(gate.len(), 1);
    }
}
