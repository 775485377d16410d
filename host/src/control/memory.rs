//! Giving the heap back after a storm.
//!
//! glibc keeps freed memory in its arenas (one per worker thread that
//! allocated) for reuse; it returns it to the kernel only from the top of
//! each heap. After 10,000 stalled hellos had been closed, limen's RSS stayed
//! at 34.8 MB, 60 s later, against 13.1 MB idle; `malloc_trim(0)` brought it
//! to 13.6 MB. Nothing is lost by keeping freed memory in steady state, so
//! the trim is only asked for after a fall: a slow check, on the main
//! runtime and never on a connection's path, compares the number of open
//! connections with its peak since the last trim. The trim itself walks
//! every arena under its lock, so it runs on a blocking thread.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::observe::metrics::Metrics;

/// How often the open-connection count is looked at: one atomic load, so
/// often enough to see the peak of any storm that lasts a second.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A fall in open connections that makes a trim worth its cost: at the
/// ~2-16 KB a connection's buffers and task take, about 2-16 MB.
const FALL: usize = 1024;

/// Watch `connections` (every open connection's task) until `stop`, and trim
/// the heap after each fall of [`FALL`] or more from the peak (counted in
/// `metrics`).
pub(crate) async fn give_back(connections: TaskTracker, stop: CancellationToken, metrics: Metrics) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut peak = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let open = connections.len();
        peak = peak.max(open);
        if peak - open < FALL {
            continue;
        }
        let fallen_from = std::mem::replace(&mut peak, open);
        let trimmed = tokio::task::spawn_blocking(|| {
            let before = resident_kib();
            trim();
            (before, resident_kib())
        });
        if let Ok((before, after)) = trimmed.await {
            metrics.memory_trims.inc();
            tracing::info!(
                target: "tls_sni", open, fallen_from, rss_kib_before = before,
                rss_kib_after = after, "memory.trimmed"
            );
        }
    }
}

/// Return free heap pages of every arena to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and only reorganises glibc's own
    // free lists, under each arena's lock; it is safe from any thread.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's, for one) return memory as they free it.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// Resident set size in KiB, for the event (0 where /proc is not there).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
