//! Choosing a member: one function per `balance`, over one snapshot of the
//! member set, skipping members that are down, ejected or already tried by
//! this connection. No locks and no allocation: a shared counter, a few
//! loads, and for the hash kinds a pass over the members.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Balance;
use super::Members;

/// What a connection brings to the choice.
#[derive(Clone, Copy)]
pub(crate) struct Pick<'a> {
    /// The hash key (client address or SNI, per `balance`).
    pub(crate) key: u64,
    /// Members this connection already failed to connect to.
    pub(crate) tried: &'a [usize],
    /// [`super::member::clock`], read once per connection.
    pub(crate) now: u64,
}

/// The index in `members` of the member to try next, if any is usable.
pub(crate) fn pick(
    balance: Balance,
    members: &Members,
    counter: &AtomicUsize,
    at: Pick<'_>,
) -> Option<usize> {
    let ok = |i: usize| members.entries[i].member.usable(at.now) && !at.tried.contains(&i);
    match balance {
        Balance::RoundRobin => round_robin(members, counter, at.tried.is_empty(), ok),
        Balance::LeastConnections => least_connections(members, counter, ok),
        Balance::RandomTwo => random_two(members, counter, ok),
        Balance::HashClient | Balance::HashSni => rendezvous(members, at.key, ok),
    }
}

/// The next slot of the weighted schedule whose member is usable. Only a
/// connection's `first` try takes a slot: a retry starts from where the
/// schedule stands without moving it, or a member that fails every
/// connection would be every next connection's first try (with two
/// members, the retry would take the other's slot each time).
fn round_robin(
    members: &Members,
    counter: &AtomicUsize,
    first: bool,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let slots = &members.schedule;
    let start = if first {
        counter.fetch_add(1, Ordering::Relaxed)
    } else {
        counter.load(Ordering::Relaxed)
    };
    (0..slots.len())
        .map(|k| slots[(start + k) % slots.len()] as usize)
        .find(|&i| ok(i))
}

/// Fewest open connections per unit of weight; ties go round, from a
/// rotating start, so equal members share evenly.
fn least_connections(
    members: &Members,
    counter: &AtomicUsize,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let n = members.entries.len();
    let start = counter.fetch_add(1, Ordering::Relaxed);
    let mut best: Option<(usize, usize, u32)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        if !ok(i) {
            continue;
        }
        let entry = &members.entries[i];
        let conns = entry.member.connections();
        // conns / weight < best_conns / best_weight, without division.
        let better = best.is_none_or(|(_, c, w)| {
            conns as u64 * u64::from(w) < c as u64 * u64::from(entry.weight)
        });
        if better {
            best = Some((i, conns, entry.weight));
        }
    }
    best.map(|(i, _, _)| i)
}

/// Two members drawn in proportion to weight; the one with fewer
/// connections per weight. When neither is usable, the least loaded usable one.
fn random_two(
    members: &Members,
    counter: &AtomicUsize,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    // A name that resolved to nothing leaves a pool empty.
    if members.schedule.is_empty() {
        return None;
    }
    let draw = mix(counter.fetch_add(1, Ordering::Relaxed) as u64);
    let slots = &members.schedule;
    let a = slots[(draw as u32 as usize) % slots.len()] as usize;
    let b = slots[((draw >> 32) as usize) % slots.len()] as usize;
    let load = |i: usize| {
        let e = &members.entries[i];
        (e.member.connections() as u64 * 256) / u64::from(e.weight)
    };
    match (ok(a), ok(b)) {
        (true, true) => Some(if load(b) < load(a) { b } else { a }),
        (true, false) => Some(a),
        (false, true) => Some(b),
        (false, false) => least_connections(members, counter, ok),
    }
}

/// Highest random weight: each member scores `weight / -ln(u)` with `u`
/// from a hash of (key, member); the best usable score wins. A key keeps
/// its member while the set is unchanged, and a member leaving moves only
/// the keys it had.
fn rendezvous(members: &Members, key: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, entry) in members.entries.iter().enumerate() {
        if !ok(i) {
            continue;
        }
        let mut hasher = FIXED.build_hasher();
        hasher.write_u64(key);
        hasher.write_u64(entry.member.seed);
        // 53 bits into (0, 1): never 0, so the logarithm is finite.
        let unit = ((hasher.finish() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = f64::from(entry.weight) / -unit.ln();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// A hash with fixed keys: the same key must pick the same member in every
/// worker and across restarts.
pub(crate) const FIXED: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// SplitMix64's finaliser: spreads a counter into well-mixed bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The round-robin schedule: each member's `weight` slots spread evenly
/// (slot k of a member of weight w sits at (k + ½) / w), so a heavy member
/// is interleaved with the rest rather than served in a burst.
pub(crate) fn schedule(weights: &[u32]) -> Vec<u32> {
    let mut slots: Vec<(f64, u32)> = weights
        .iter()
        .enumerate()
        .flat_map(|(i, &w)| (0..w).map(move |k| ((f64::from(k) + 0.5) / f64::from(w), i as u32)))
        .collect();
    slots.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    slots.into_iter().map(|(_, i)| i).collect()
}
