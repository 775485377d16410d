//! Following a client that changes address (NAT rebinding, migration): the
//! connection IDs its server chose, learned from the server's long-header
//! packets, map to the flow that carries them, across the listener's
//! workers (the kernel may hand the new 4-tuple to another one).
//!
//! One map per listener behind a mutex: it is touched when a server names
//! an ID (a flow's first replies) and when a datagram comes from an address
//! no flow or pending client has; never for a datagram of a known flow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::mpsc::UnboundedSender;

use super::Event;
use crate::hello::destination_id;

/// Where a flow lives: its worker's loop and its id there.
#[derive(Clone)]
pub(super) struct Route {
    pub(super) worker: usize,
    pub(super) events: UnboundedSender<Event>,
    pub(super) id: u64,
}

/// A listener's connection IDs, every worker's flows.
#[derive(Default)]
pub(super) struct Ids {
    routes: Mutex<HashMap<Box<[u8]>, Route>>,
    /// Bit n set: some server chose an n-byte ID (a short header does not
    /// carry its ID's length).
    lengths: AtomicU32,
}

impl Ids {
    /// `id` (a server's Source Connection ID) reaches `route`.
    pub(super) fn learn(&self, id: &[u8], route: Route) {
        if id.is_empty() || id.len() > 20 {
            return;
        }
        self.lengths.fetch_or(1 << id.len(), Ordering::Relaxed);
        // First come: an ID a flow holds is not taken over by another.
        if let Ok(mut routes) = self.routes.lock() {
            routes.entry(id.into()).or_insert(route);
        }
    }

    /// A flow ended: its IDs lead nowhere.
    pub(super) fn forget(&self, ids: &[Box<[u8]>]) {
        if let Ok(mut routes) = self.routes.lock() {
            for id in ids {
                routes.remove(id);
            }
        }
    }

    /// The flow a datagram from an unknown address belongs to, if its
    /// Destination Connection ID is one a server chose.
    pub(super) fn find(&self, datagram: &[u8]) -> Option<Route> {
        let lengths = self.lengths.load(Ordering::Relaxed);
        // No server has named an ID yet: nothing to look for, no lock.
        if lengths == 0 {
            return None;
        }
        let routes = self.routes.lock().ok()?;
        (1..=20usize)
            .filter(|len| lengths & (1 << len) != 0)
            .filter_map(|len| destination_id(datagram, len))
            .find_map(|id| routes.get(id).cloned())
    }
}
