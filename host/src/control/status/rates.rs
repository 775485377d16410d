//! Rates for the status page: connections and bytes per second over the
//! last minute. A sample of the totals is taken once a second on the main
//! runtime (never on a connection's path); a rate is the difference
//! between the newest sample and the one a minute older.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::observe::metrics::{Metrics, names};

/// The window a rate covers.
const WINDOW: Duration = Duration::from_secs(60);

/// One look at the totals.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    connections: u64,
    bytes_up: u64,
    bytes_down: u64,
}

/// The last minute of samples (61 at most: one a second, both ends).
#[derive(Default)]
pub(crate) struct Rates(Mutex<VecDeque<Sample>>);

impl Rates {
    /// Sample `metrics` every second until `stop`.
    pub(crate) async fn follow(&self, metrics: Metrics, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.sample(&metrics, Instant::now()),
            }
        }
    }

    fn sample(&self, metrics: &Metrics, at: Instant) {
        // The byte totals are two counters read directly; only the
        // connections, one series per listener, need the registry summed.
        self.push(Sample {
            at,
            connections: metrics.counter(names::CONNECTIONS, &[]),
            bytes_up: metrics.bytes_up.get(),
            bytes_down: metrics.bytes_down.get(),
        });
    }

    fn push(&self, sample: Sample) {
        let mut samples = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push_back(sample);
        while samples
            .front()
            .is_some_and(|s| sample.at.duration_since(s.at) > WINDOW)
        {
            samples.pop_front();
        }
    }

    /// Per second over the window (or since the first sample, in limen's
    /// first minute); nulls until two samples a second apart exist.
    pub(crate) fn json(&self) -> Value {
        let samples = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some(first), Some(last)) = (samples.front(), samples.back()) else {
            return json!({ "window_s": null });
        };
        let seconds = last.at.duration_since(first.at).as_secs_f64();
        if seconds < 1.0 {
            return json!({ "window_s": null });
        }
        let per_second =
            |a: u64, b: u64| ((b.saturating_sub(a)) as f64 / seconds * 10.0).round() / 10.0;
        json!({
            "window_s": seconds.round(),
            "connections_per_s": per_second(first.connections, last.connections),
            "bytes_up_per_s": per_second(first.bytes_up, last.bytes_up),
            "bytes_down_per_s": per_second(first.bytes_down, last.bytes_down),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_cover_the_last_minute() {
        let rates = Rates::default();
        assert_eq!(rates.json()["window_s"], Value::Null);
        let start = Instant::now();
        for second in 0..=90u64 {
            rates.push(Sample {
                at: start + Duration::from_secs(second),
                // 5 connections a second, then 20 from second 60 on.
                connections: if second <= 60 {
                    second * 5
                } else {
                    300 + (second - 60) * 20
                },
                bytes_up: second * 1000,
                bytes_down: second * 4000,
            });
        }
        let json = rates.json();
        assert_eq!(json["window_s"], 60.0);
        // Seconds 30..=90: 150 connections in the first 30 s, 600 in the next 30.
        assert_eq!(json["connections_per_s"], 12.5);
        assert_eq!(json["bytes_up_per_s"], 1000.0);
        assert_eq!(json["bytes_down_per_s"], 4000.0);
    }
}
