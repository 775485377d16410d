//! Repeated warnings of one kind, rate-limited: at most `per_second` of them
//! are logged each second, and the first one logged after some were dropped
//! says how many (`suppressed`). Metrics still count every occurrence; this
//! only keeps a flood of bad connections or trapping calls from filling the
//! disk with the same line.
//!
//! Lock-free, and it reads the clock only when something is being reported.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// One kind of repeated event.
pub(crate) struct LogLimit {
    per_second: u32,
    /// The second (since the first report of the process) being counted.
    second: AtomicU64,
    /// Reports taken in that second.
    taken: AtomicU32,
    /// Reports dropped since the last one logged.
    suppressed: AtomicU64,
}

impl LogLimit {
    pub(crate) const fn new(per_second: u32) -> LogLimit {
        LogLimit {
            per_second,
            second: AtomicU64::new(0),
            taken: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this report may be logged (`n` were dropped since the
    /// last one that was); `None` when it is to be dropped.
    pub(crate) fn allow(&self) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        let now = START.get_or_init(Instant::now).elapsed().as_secs() + 1;
        let seen = self.second.load(Ordering::Relaxed);
        if now != seen
            && self
                .second
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.taken.store(0, Ordering::Relaxed);
        }
        if self.taken.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_to_the_rate_and_the_next_second_says_how_many_were_dropped() {
        let limit = LogLimit::new(3);
        let burst: Vec<_> = (0..1000).map(|_| limit.allow()).collect();
        assert_eq!(burst.iter().filter(|a| a.is_some()).count(), 3);
        assert_eq!(burst[0], Some(0));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(limit.allow(), Some(997));
        assert_eq!(limit.allow(), Some(0));
    }
}
