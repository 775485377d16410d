//! The pending-hello budget of one listener: how many accepted connections
//! may be waiting for their ClientHello at once, in all and per client
//! address. A client that opens connections and sends nothing (a slowloris)
//! can then hold only its own share, and never the slots good clients need.
//!
//! Lock-free on the connection path: a counter for the listener and a
//! two-row count-min sketch of per-client counters (fixed size, so an
//! attacker with many addresses cannot grow it). Two addresses share a
//! counter only if they collide in both rows under a key chosen at random
//! per process; a collision can only make a limit stricter, never looser.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use crate::outcome::ParseFailure;
use crate::state::config::{Limits, MAX_PENDING_HELLOS_PER_CLIENT};

/// Counters per row of the sketch (a power of two).
const WIDTH: usize = 1 << 16;

// A counter never passes the largest limit (one over it, briefly).
const _: () = assert!(MAX_PENDING_HELLOS_PER_CLIENT < u16::MAX as usize);

/// Shortest hello deadline pressure can bring.
const PRESSED_FLOOR: Duration = Duration::from_millis(500);

/// One listener's budget, shared by its accept loops on every worker.
pub(crate) struct HelloBudget {
    pending: AtomicUsize,
    /// Two rows of `WIDTH`; allocated zeroed, so untouched pages cost no RSS.
    clients: Box<[AtomicU16]>,
    hasher: RandomState,
}

/// A connection's place in the budget, given back when dropped (its hello
/// arrived, or it ended).
pub(crate) struct Pending {
    budget: Arc<HelloBudget>,
    cells: [usize; 2],
}

/// Admitted, and the hello deadline that applies.
pub(crate) struct Admitted {
    pub(crate) pending: Pending,
    pub(crate) hello_timeout: Duration,
}

impl HelloBudget {
    pub(crate) fn new() -> Arc<HelloBudget> {
        Arc::new(HelloBudget {
            pending: AtomicUsize::new(0),
            clients: (0..2 * WIDTH).map(|_| AtomicU16::new(0)).collect(),
            hasher: RandomState::new(),
        })
    }

    /// Take a place for a connection from `client`, or say which limit
    /// refuses it. Past half the listener's budget the hello deadline
    /// shortens (to a fifth, at least `PRESSED_FLOOR`), as nginx and HAProxy
    /// shorten theirs under pressure, so stalled hellos drain faster.
    pub(crate) fn admit(
        self: &Arc<Self>,
        client: IpAddr,
        limits: &Limits,
    ) -> Result<Admitted, ParseFailure> {
        // Pending connections also hold a connection-limit permit: at most
        // half of those, so established ones always keep the other half.
        let cap = limits
            .max_pending_hellos
            .min((limits.max_connections / 2).max(1));
        let before = self.pending.fetch_add(1, Ordering::Relaxed);
        if before >= cap {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(ParseFailure::PendingLimit);
        }
        let hash = self.hasher.hash_one(group(client));
        let cells = [
            (hash as usize) & (WIDTH - 1),
            WIDTH + ((hash >> 32) as usize & (WIDTH - 1)),
        ];
        let counts = cells.map(|cell| self.clients[cell].fetch_add(1, Ordering::Relaxed));
        let pending = Pending {
            budget: self.clone(),
            cells,
        };
        if usize::from(counts[0].min(counts[1])) >= limits.max_pending_hellos_per_client {
            return Err(ParseFailure::ClientPendingLimit); // `pending` gives it back
        }
        let hello_timeout = if before >= cap / 2 {
            (limits.hello_timeout / 5)
                .max(PRESSED_FLOOR)
                .min(limits.hello_timeout)
        } else {
            limits.hello_timeout
        };
        Ok(Admitted {
            pending,
            hello_timeout,
        })
    }

    /// Hellos awaited now.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        for cell in self.cells {
            self.budget.clients[cell].fetch_sub(1, Ordering::Relaxed);
        }
        self.budget.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The unit a client limit counts: an IPv4 address, an IPv6 /64 (one
/// subscriber's usual allocation: a single host can use any address in it).
fn group(client: IpAddr) -> u128 {
    match client.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64) | (1 << 127),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: usize) -> Limits {
        let secs = Duration::from_secs;
        Limits {
            hello_max_bytes: 16 << 10,
            hello_timeout: secs(5),
            connect_timeout: secs(5),
            idle_timeout: secs(600),
            shutdown_grace: secs(30),
            max_connections: 10_000,
            max_pending_hellos: total,
            max_pending_hellos_per_client: per_client,
            listen_backlog: 4096,
            copy_buffer: 16 << 10,
            handshake_timeout: secs(10),
            max_flows: 10_000,
            max_pending_initials: 1024,
            max_pending_initials_per_client: 8,
            flow_idle_timeout: secs(60),
        }
    }

    #[test]
    fn one_client_gets_its_share_and_others_still_get_in() {
        let budget = HelloBudget::new();
        let limits = limits(100, 3);
        let attacker: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| budget.admit(attacker, &limits).unwrap())
            .collect();
        assert!(matches!(
            budget.admit(attacker, &limits),
            Err(ParseFailure::ClientPendingLimit)
        ));
        assert_eq!(budget.pending(), 3, "a refusal gives its place back");
        assert!(budget.admit("127.0.0.1".parse().unwrap(), &limits).is_ok());
        drop(held);
        assert!(budget.admit(attacker, &limits).is_ok(), "places come back");
        assert_eq!(budget.pending(), 0);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_client() {
        let budget = HelloBudget::new();
        let limits = limits(100, 2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held = [
            budget.admit(a, &limits).unwrap(),
            budget.admit(b, &limits).unwrap(),
        ];
        assert!(budget.admit(a, &limits).is_err());
        assert!(budget.admit(other, &limits).is_ok());
    }

    #[test]
    fn the_listener_budget_caps_all_clients_and_pressure_shortens_the_deadline() {
        let budget = HelloBudget::new();
        let limits = limits(4, 64);
        let client = |i: u8| IpAddr::from([10, 0, 0, i]);
        let first = budget.admit(client(1), &limits).unwrap();
        assert_eq!(first.hello_timeout, limits.hello_timeout);
        let _second = budget.admit(client(2), &limits).unwrap();
        let third = budget.admit(client(3), &limits).unwrap();
        assert_eq!(
            third.hello_timeout,
            limits.hello_timeout / 5,
            "past half: shorter"
        );
        let _fourth = budget.admit(client(4), &limits).unwrap();
        assert!(matches!(
            budget.admit(client(5), &limits),
            Err(ParseFailure::PendingLimit)
        ));
    }

    #[test]
    fn pending_hellos_never_take_more_than_half_the_connection_limit() {
        let budget = HelloBudget::new();
        let mut limits = limits(4096, 64);
        limits.max_connections = 6;
        let client = |i: u8| IpAddr::from([10, 0, 0, i]);
        let _held: Vec<_> = (1..=3)
            .map(|i| budget.admit(client(i), &limits).unwrap())
            .collect();
        assert!(matches!(
            budget.admit(client(4), &limits),
            Err(ParseFailure::PendingLimit)
        ));
    }
}
