//! One member of a pool: its address and what limen knows of its health.
//!
//! Every field is an atomic, so connections read and update a member
//! without a lock. The active check writes `up` and `streak` (from one task
//! per pool); live traffic writes `failures`, `ejected_until` and
//! `connections`. A reload that keeps a member keeps this struct, so its
//! health survives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use rustls_pki_types::ServerName;

/// A member's state.
pub(crate) struct Member {
    /// Where to connect.
    pub(crate) addr: SocketAddr,
    /// The host the operator wrote (a name, or the address): the TLS name
    /// for checks and re-encryption when none is given.
    pub(crate) host: ServerName<'static>,
    /// A hash of `addr`, for rendezvous hashing.
    pub(crate) seed: u64,
    /// The active check's verdict (true until a check says otherwise).
    up: AtomicBool,
    /// Consecutive check results that disagree with `up`.
    streak: AtomicU32,
    /// Consecutive connect failures of live traffic.
    failures: AtomicU32,
    /// Milliseconds on [`clock`] before which the member gets no new
    /// connection (passive ejection); 0: not ejected.
    ejected_until: AtomicU64,
    /// Connections open to it now.
    connections: AtomicUsize,
    healthy_gauge: IntGauge,
    connections_gauge: IntGauge,
}

impl Member {
    pub(crate) fn new(
        addr: SocketAddr,
        host: ServerName<'static>,
        (healthy_gauge, connections_gauge): (IntGauge, IntGauge),
    ) -> Member {
        healthy_gauge.set(1);
        connections_gauge.set(0);
        let seed = std::hash::BuildHasher::hash_one(&super::balance::FIXED, addr);
        Member {
            addr,
            host,
            seed,
            up: AtomicBool::new(true),
            streak: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            healthy_gauge,
            connections_gauge,
        }
    }

    /// May it get a new connection now (`now`: [`clock`])?
    pub(crate) fn usable(&self, now: u64) -> bool {
        self.up.load(Ordering::Relaxed) && self.ejected_until.load(Ordering::Relaxed) <= now
    }

    /// The active check's verdict.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Ejected by live traffic at `now` ([`clock`]).
    pub(crate) fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Connections open to it.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// One active check's result. Returns the new state when this result
    /// changes it: `rise` passes in a row bring it up, `fall` failures in a
    /// row take it down.
    pub(crate) fn checked(&self, passed: bool, rise: u32, fall: u32) -> Option<bool> {
        if passed == self.up.load(Ordering::Relaxed) {
            self.streak.store(0, Ordering::Relaxed);
            return None;
        }
        let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        if streak < if passed { rise } else { fall } {
            return None;
        }
        self.streak.store(0, Ordering::Relaxed);
        self.up.store(passed, Ordering::Relaxed);
        if passed {
            // A member the check brings back starts afresh.
            self.ejected_until.store(0, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
        }
        self.healthy_gauge.set(i64::from(passed));
        Some(passed)
    }

    /// Up, whatever the checks said: no check runs any more.
    pub(crate) fn assume_up(&self) {
        self.streak.store(0, Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
        self.healthy_gauge.set(1);
    }

    /// A live connect succeeded.
    pub(crate) fn connect_ok(&self) {
        // Read first: the common case writes nothing to a shared line.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A live connect failed. True when this failure ejects the member
    /// (`eject_after` in a row; 0: never).
    pub(crate) fn connect_failed(&self, eject_after: u32, eject_for: Duration) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if eject_after == 0 || failures < eject_after {
            return false;
        }
        self.failures.store(0, Ordering::Relaxed);
        let until = clock() + u64::try_from(eject_for.as_millis()).unwrap_or(u64::MAX / 2);
        self.ejected_until.store(until, Ordering::Relaxed);
        true
    }
}

/// A connection's hold on a member: counted in its open connections until
/// dropped (the connection ends).
pub(crate) struct Lease(Arc<Member>);

impl Lease {
    pub(crate) fn new(member: Arc<Member>) -> Lease {
        member.connections.fetch_add(1, Ordering::Relaxed);
        member.connections_gauge.inc();
        Lease(member)
    }

    /// The member held.
    pub(crate) fn member(&self) -> &Member {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
        self.0.connections_gauge.dec();
    }
}

/// Milliseconds since the first call: the clock ejections are kept in
/// (monotonic, and a u64 fits in an atomic where an `Instant` does not).
/// Starts at 1, so 0 can mean "never ejected".
pub(crate) fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX / 2) + 1
}
