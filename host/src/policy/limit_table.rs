//! Limits a policy can use: token buckets (`take`) and concurrency slots
//! (`acquire`), kept by the host so they outlive any instance, swap or
//! reload, and bounded whatever keys a policy invents.
//!
//! One fixed table of [`KEYS`] entries, 8-way set-associative (half for
//! buckets, half for slots): a key's hash picks a set, its tag finds the way. A new key takes an empty way or the
//! least recently used one (counted as an eviction); a slot with
//! connections holding it is never evicted. Every field is an atomic, so
//! the connection path takes no lock and allocates nothing.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::observe::metrics::LimitCounters;

/// Keys the table holds at once (rate buckets and slots together).
pub const KEYS: usize = 16_384;
const WAYS: usize = 8;
/// A token is this many units: a bucket refills in fractions of a token.
const UNIT: u64 = 256;
/// A bucket not used for this long is full again, whatever its state says
/// (its 32-bit microsecond clock may have wrapped).
const STALE_SECONDS: u32 = 3600;
/// A rate slot's state before its first `take`: a full bucket.
const FRESH: u64 = u64::MAX;
/// A concurrency slot being evicted: `acquire` fails on it.
const EVICTING: u64 = u64::MAX;
/// The largest rate and burst a `take` honours.
pub const MAX_RATE: u32 = 1_000_000;
/// Slots one connection may hold.
pub const MAX_HELD: usize = 4;

/// The table.
pub struct LimitTable {
    slots: Box<[Slot]>,
    hasher: RandomState,
    start: Instant,
    counters: LimitCounters,
}

#[derive(Default)]
struct Slot {
    /// Hash of (kind, key); 0: empty.
    tag: AtomicU64,
    /// Seconds since `start` of the last use, for LRU eviction.
    used: AtomicU32,
    /// Rate: tokens (in units) << 32 | microseconds (wrapping). Slots: the count held.
    state: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rate,
    Slots,
}

/// Concurrency slots a connection holds, given back when it is dropped.
#[derive(Default)]
pub struct Held {
    slots: [Option<(Arc<LimitTable>, usize)>; MAX_HELD],
}

impl Held {
    /// Whether another slot fits.
    pub fn has_room(&self) -> bool {
        self.slots.iter().any(Option::is_none)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for (limit_table, index) in self.slots.iter_mut().filter_map(Option::take) {
            limit_table.slots[index]
                .state
                .fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl LimitTable {
    /// An empty table whose refusals and evictions are counted nowhere: a
    /// shadow's, a preparation's scratch, an offline engine's.
    pub fn detached() -> LimitTable {
        LimitTable::new(LimitCounters::detached())
    }

    /// An empty table.
    pub fn new(counters: LimitCounters) -> LimitTable {
        LimitTable {
            slots: std::iter::repeat_with(Slot::default).take(KEYS).collect(),
            hasher: RandomState::new(),
            start: Instant::now(),
            counters,
        }
    }

    /// Take one token from bucket `key` (refilling at `per_second`, holding
    /// at most `burst`). False: the bucket is empty (or the limit is zero).
    pub fn take(&self, key: &str, per_second: u32, burst: u32) -> bool {
        // Tokens count in 32 bits of units.
        let (per_second, burst) = (per_second.min(MAX_RATE), burst.min(MAX_RATE));
        if per_second == 0 || burst == 0 {
            self.counters.rate_limited.inc();
            return false;
        }
        let now_s = self.seconds();
        let Some((index, _)) = self.find(Kind::Rate, key, now_s) else {
            self.counters.rate_limited.inc();
            return false;
        };
        let slot = &self.slots[index];
        let now_us = self.start.elapsed().as_micros() as u32;
        let full = u64::from(burst) * UNIT;
        let rate = u64::from(per_second) * UNIT;
        let mut old = slot.state.load(Ordering::Acquire);
        loop {
            let (tokens, since) = if old == FRESH {
                (full, now_us)
            } else {
                let (tokens, since) = ((old >> 32).min(full), old as u32);
                let elapsed = u64::from(now_us.wrapping_sub(since));
                let credit = elapsed * rate / 1_000_000;
                if tokens + credit >= full {
                    (full, now_us)
                } else {
                    // Advance the clock only by the time credited, so
                    // frequent calls do not lose the fractions.
                    let spent = (credit * 1_000_000).div_ceil(rate) as u32;
                    (tokens + credit, since.wrapping_add(spent))
                }
            };
            if tokens < UNIT {
                self.counters.rate_limited.inc();
                return false;
            }
            let next = ((tokens - UNIT) << 32) | u64::from(since);
            match slot
                .state
                .compare_exchange_weak(old, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(current) => old = current,
            }
        }
    }

    /// Take one of `max` slots named `key` into `held`, for the life of the
    /// connection holding it. False: all are taken.
    pub fn acquire(self: &Arc<Self>, key: &str, max: u32, held: &mut Held) -> bool {
        let free = held.slots.iter().position(Option::is_none);
        let (Some(free), true) = (free, max > 0) else {
            self.counters.slots_full.inc();
            return false;
        };
        let Some((index, tag)) = self.find(Kind::Slots, key, self.seconds()) else {
            self.counters.slots_full.inc();
            return false;
        };
        let slot = &self.slots[index];
        let state = &slot.state;
        let mut count = state.load(Ordering::Acquire);
        loop {
            if count == EVICTING || count >= u64::from(max) {
                self.counters.slots_full.inc();
                return false;
            }
            match state.compare_exchange_weak(count, count + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(current) => count = current,
            }
        }
        // Evicted and taken by another key between `find` and the count:
        // that count was not ours to take.
        if slot.tag.load(Ordering::Acquire) != tag {
            state.fetch_sub(1, Ordering::AcqRel);
            self.counters.slots_full.inc();
            return false;
        }
        held.slots[free] = Some((self.clone(), index));
        true
    }

    fn seconds(&self) -> u32 {
        self.start.elapsed().as_secs() as u32
    }

    /// The way holding `key`, claiming one (empty, else least recently
    /// used and evictable) when it has none, and its tag. `None`: the set
    /// is full of slots in use. Buckets and slots live in separate halves
    /// of the table, so a stale write of one kind never lands in the other.
    fn find(&self, kind: Kind, key: &str, now: u32) -> Option<(usize, u64)> {
        let tag = self.hasher.hash_one(key).max(1);
        let half = KEYS / 2;
        let base = if kind == Kind::Slots { half } else { 0 };
        let set = base + (tag as usize % (half / WAYS)) * WAYS;
        // Claiming can race another connection claiming the same new key:
        // look again before each claim, so the loser finds the winner's way.
        for _ in 0..WAYS {
            if let Some(index) = self.lookup(kind, set, tag, now) {
                return Some((index, tag));
            }
            match self.claim(kind, set, tag, now) {
                Claim::Taken(index) => return Some((index, tag)),
                Claim::Raced => continue,
                Claim::Full => return None,
            }
        }
        None
    }

    fn lookup(&self, kind: Kind, set: usize, tag: u64, now: u32) -> Option<usize> {
        let index =
            (set..set + WAYS).find(|&i| self.slots[i].tag.load(Ordering::Acquire) == tag)?;
        let slot = &self.slots[index];
        let used = slot.used.load(Ordering::Relaxed);
        if kind == Kind::Rate && now.wrapping_sub(used) > STALE_SECONDS {
            slot.state.store(FRESH, Ordering::Release);
        }
        if used != now {
            slot.used.store(now, Ordering::Relaxed);
        }
        Some(index)
    }

    /// Take an empty way, else the least recently used one that may go.
    fn claim(&self, kind: Kind, set: usize, tag: u64, now: u32) -> Claim {
        let mut order: [usize; WAYS] = std::array::from_fn(|i| set + i);
        order.sort_by_key(|&i| {
            let slot = &self.slots[i];
            let occupied = slot.tag.load(Ordering::Relaxed) != 0;
            (occupied, slot.used.load(Ordering::Relaxed))
        });
        let mut raced = false;
        for index in order {
            let slot = &self.slots[index];
            let old = slot.tag.load(Ordering::Acquire);
            // Slots with holders keep their way; marking an idle one
            // makes an `acquire` on its key fail while it goes.
            if kind == Kind::Slots
                && slot
                    .state
                    .compare_exchange(0, EVICTING, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            if slot
                .tag
                .compare_exchange(old, tag, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                if kind == Kind::Slots {
                    slot.state.store(0, Ordering::Release);
                }
                raced = true;
                break;
            }
            slot.used.store(now, Ordering::Relaxed);
            let fresh = match kind {
                Kind::Rate => FRESH,
                Kind::Slots => 0,
            };
            slot.state.store(fresh, Ordering::Release);
            if old != 0 {
                self.counters.evicted.inc();
            }
            return Claim::Taken(index);
        }
        if raced { Claim::Raced } else { Claim::Full }
    }
}

/// What an attempt to claim a way came to.
enum Claim {
    Taken(usize),
    /// Another claim changed the way first: look again.
    Raced,
    /// Every way holds slots in use.
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_table() -> Arc<LimitTable> {
        Arc::new(LimitTable::detached())
    }

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_its_rate() {
        let q = limit_table();
        let taken = (0..10).filter(|_| q.take("k", 1000, 3)).count();
        assert_eq!(taken, 3);
        assert!(!q.take("k", 1000, 3));
        std::thread::sleep(std::time::Duration::from_millis(5));
        // 1,000 a second: ~5 tokens in 5 ms, capped at the burst.
        assert_eq!((0..10).filter(|_| q.take("k", 1000, 3)).count(), 3);
        assert!(q.take("other", 1, 1) && !q.take("other", 1, 1));
        assert!(!q.take("zero", 0, 5));
        assert_eq!(q.counters.rate_limited.get(), 7 + 1 + 7 + 1 + 1);
    }

    #[test]
    fn slots_are_given_back_by_their_holder_and_never_evicted_while_held() {
        let q = limit_table();
        let mut one = Held::default();
        assert!(q.acquire("s", 1, &mut one));
        let mut two = Held::default();
        assert!(!q.acquire("s", 1, &mut two));
        // Flood every set with other slot keys, each held and let go: the
        // held one stays.
        for i in 0..KEYS * 2 {
            let mut brief = Held::default();
            q.acquire(&format!("flood{i}"), 1, &mut brief);
        }
        assert!(q.counters.evicted.get() > 0);
        assert!(!q.acquire("s", 1, &mut two), "the held slot was evicted");
        drop(one);
        assert!(q.acquire("s", 1, &mut two));
        // At most MAX_HELD per connection.
        let mut many = Held::default();
        let got = (0..6)
            .filter(|i| q.acquire(&format!("m{i}"), 9, &mut many))
            .count();
        assert_eq!(got, MAX_HELD);
    }
}
