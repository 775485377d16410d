//! Counters, gauges and histograms for what happens to connections, in a
//! registry owned here, and their Prometheus exposition at `/metrics`
//! (`endpoint`, `scrape`).
//!
//! The connection path never looks a label up: per-listener series are
//! resolved when a listener starts (`listener`), the few global label sets
//! (failure kinds, directions) when the registry is built, and per-upstream
//! series through a capped, lock-free map (`upstreams`). Every update is then
//! an atomic add.

mod certs;
pub(crate) mod endpoint;
mod listener;
mod pools;
mod process;
mod quic;
mod scrape;
mod upstreams;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::outcome::{ChangeOutcome, Trigger, UpstreamFailure};
pub use crate::outcome::{PolicyFailure, RouteResult, Stage};
pub(crate) use certs::OrderOutcome;
pub(crate) use listener::{Active, ListenerMetrics};
pub use pools::LimitCounters;
pub(crate) use quic::QuicMetrics;
pub use upstreams::OTHER as OTHER_UPSTREAM;
use upstreams::UpstreamLabels;

pub mod names;

/// Bucket bounds, in seconds, of the peek histogram: finite up to 3 s (a
/// slower hello counts in `+Inf` only).
const PEEK_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0,
];
/// A warm `route` call takes a few microseconds; the deadline is at most 1 s.
const POLICY_CALL_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.1,
    1.0,
];
/// Fuel per call: a table lookup uses thousands, the default budget is 10^6.
const FUEL_BUCKETS: &[f64] = &[1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8, 1e9];
const CONNECT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// limen's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    connections: IntCounterVec,
    worker_connections: IntCounterVec,
    routes: IntCounterVec,
    misses: IntCounterVec,
    parse_failures: IntCounterVec,
    peek_duration: HistogramVec,
    active: IntGaugeVec,
    pub(crate) policy_call: Histogram,
    pub(crate) policy_fuel: Histogram,
    pub(crate) policy_recycled: IntCounter,
    policy_failures: [IntCounter; PolicyFailure::COUNT],
    upstream_failures: [IntCounter; UpstreamFailure::COUNT],
    pub(crate) upstream_connect: Histogram,
    upstream_routed: Arc<UpstreamLabels>,
    handshake_failures: IntCounterVec,
    /// `bytes{direction="up"}` and `"down"`, resolved once: they move on every connection.
    pub(crate) bytes_up: IntCounter,
    pub(crate) bytes_down: IntCounter,
    policy_swaps: IntCounterVec,
    config_reloads: IntCounterVec,
    pub(crate) access_log_dropped: IntCounter,
    pub(crate) memory_trims: IntCounter,
    policy_info: IntGaugeVec,
    upstream_pools: pools::PoolFamilies,
    upgrades: IntCounterVec,
    shadow: IntCounterVec,
    canary: IntCounterVec,
    routes_active: IntGaugeVec,
    limit_table: LimitCounters,
    certs: certs::CertFamilies,
    quic: quic::QuicFamilies,
    pub(crate) source_connected: IntGauge,
}

impl Metrics {
    /// A fresh registry with every family registered and the default
    /// upstream label cap.
    pub fn new() -> Metrics {
        Metrics::with_upstream_labels(crate::observe::DEFAULT_UPSTREAM_LABELS)
    }

    /// A fresh registry whose `limen_upstream_routed_total` has at most
    /// `cap` upstream labels (then `other`).
    pub fn with_upstream_labels(cap: usize) -> Metrics {
        let registry = Registry::new();
        let register = |collector: Box<dyn prometheus::core::Collector>| {
            // Names are static and distinct: registering cannot fail.
            let _ = registry.register(collector);
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let family = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
            register(Box::new(family.clone()));
            family
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let family = IntGaugeVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
            register(Box::new(family.clone()));
            family
        };
        let histograms = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let family = HistogramVec::new(opts, labels)
                .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
            register(Box::new(family.clone()));
            family
        };
        let bytes = counters(names::BYTES, "Bytes proxied.", &["direction"]);
        let failures = counters(names::POLICY_FAILURES, "Policy call failures.", &["kind"]);
        let upstream_failures = counters(
            names::UPSTREAM_FAILURES,
            "Upstream connect failures.",
            &["reason"],
        );
        let routed = counters(
            names::UPSTREAM_ROUTED,
            "Connections routed, by upstream (capped; the rest are `other`).",
            &["upstream"],
        );
        let single = |name: &str, help: &str, buckets: &[f64]| {
            histograms(name, help, buckets, &[]).with_label_values::<&str>(&[])
        };
        Metrics {
            bytes_up: bytes.with_label_values(&["up"]),
            bytes_down: bytes.with_label_values(&["down"]),
            connections: counters(names::CONNECTIONS, "Connections accepted.", &["listener"]),
            worker_connections: counters(
                names::WORKER_CONNECTIONS,
                "Connections accepted, by worker.",
                &["worker"],
            ),
            routes: counters(
                names::ROUTES,
                "Policy decisions, by result.",
                &["listener", "result"],
            ),
            misses: counters(
                names::MISSES,
                "Connections no rule matched, with no fallback.",
                &["listener"],
            ),
            parse_failures: counters(
                names::PARSE_FAILURES,
                "ClientHellos not gathered.",
                &["listener", "reason"],
            ),
            peek_duration: histograms(
                names::PEEK_DURATION,
                "Time to gather the ClientHello.",
                PEEK_BUCKETS,
                &["listener"],
            ),
            active: gauges(
                names::ACTIVE,
                "Connections open, by action.",
                &["listener", "action"],
            ),
            policy_call: single(
                names::POLICY_CALL,
                "Time in the policy's route call.",
                POLICY_CALL_BUCKETS,
            ),
            policy_fuel: single(names::POLICY_FUEL, "Fuel per route call.", FUEL_BUCKETS),
            policy_recycled: counters(
                names::POLICY_RECYCLED,
                "Policy instances replaced before their memory reached the limit.",
                &[],
            )
            .with_label_values::<&str>(&[]),
            policy_failures: PolicyFailure::ALL
                .map(|kind| failures.with_label_values(&[kind.as_str()])),
            upstream_failures: UpstreamFailure::ALL
                .map(|reason| upstream_failures.with_label_values(&[reason.as_str()])),
            upstream_connect: single(
                names::UPSTREAM_CONNECT,
                "Time to connect to an upstream.",
                CONNECT_BUCKETS,
            ),
            upstream_routed: Arc::new(UpstreamLabels::new(routed, cap)),
            handshake_failures: counters(
                names::HANDSHAKE_FAILURES,
                "Terminated TLS handshakes that failed.",
                &["listener", "reason"],
            ),
            policy_swaps: counters(
                names::POLICY_SWAPS,
                "Policy swap attempts.",
                &["trigger", "outcome"],
            ),
            config_reloads: counters(
                names::CONFIG_RELOADS,
                "Configuration reloads.",
                &["outcome"],
            ),
            access_log_dropped: counters(
                names::ACCESS_LOG_DROPPED,
                "Access log lines dropped: the writer fell behind.",
                &[],
            )
            .with_label_values::<&str>(&[]),
            memory_trims: counters(
                names::MEMORY_TRIMS,
                "Heap handed back to the kernel after a fall in open connections.",
                &[],
            )
            .with_label_values::<&str>(&[]),
            policy_info: gauges(
                names::POLICY_INFO,
                "The live policy's version.",
                &["version"],
            ),
            upstream_pools: pools::PoolFamilies::new(&gauges, &counters),
            upgrades: process::upgrades(&counters),
            shadow: process::shadow(&counters),
            canary: process::canary(&counters),
            routes_active: gauges(
                names::ROUTES_ACTIVE,
                "Routing rules a policy holds, as its init reported.",
                &["policy"],
            ),
            limit_table: pools::limit_counters(&counters),
            certs: certs::CertFamilies::new(&gauges, &counters),
            quic: quic::QuicFamilies::new(&gauges, &counters),
            source_connected: gauges(
                names::SOURCE_CONNECTED,
                "1 while connected to the [source.etcd] the policy comes from.",
                &[],
            )
            .with_label_values::<&str>(&[]),
            registry,
        }
    }

    /// Resolve one listener's series for one worker (once, when that
    /// worker's accept loop starts).
    pub(crate) fn listener(&self, name: &str, worker: usize) -> ListenerMetrics {
        ListenerMetrics::new(self, name, worker)
    }

    /// Count a policy failure.
    pub(crate) fn policy_failed(&self, kind: PolicyFailure) {
        self.policy_failures[kind as usize].inc();
    }

    /// Count an upstream connect failure.
    pub(crate) fn upstream_failed(&self, reason: UpstreamFailure) {
        self.upstream_failures[reason as usize].inc();
    }

    /// Count a policy swap attempt (off the data path: a labelled lookup).
    pub(crate) fn policy_swap(&self, trigger: Trigger, outcome: ChangeOutcome) {
        self.policy_swaps
            .with_label_values(&[trigger.as_str(), outcome.as_str()])
            .inc();
    }

    /// Count a configuration reload.
    pub(crate) fn config_reload(&self, outcome: ChangeOutcome) {
        self.config_reloads
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// Count a connection routed to `upstream`.
    pub(crate) fn routed_to(&self, upstream: &crate::decision::UpstreamAddr) {
        self.upstream_routed.inc(upstream);
    }

    /// Record a successful upstream connect.
    pub(crate) fn connected(&self, took: Duration) {
        self.upstream_connect.observe(took.as_secs_f64());
    }

    /// The live policy's series: `version` the one live version in
    /// `limen_policy_info`, and the rules it said it holds (`routes`).
    pub(crate) fn policy_live(&self, version: &str, routes: Option<u32>) {
        self.policy_info.reset();
        self.policy_info.with_label_values(&[version]).set(1);
        self.routes_active("live", routes);
    }

    /// The value of a counter or gauge, or a histogram's sample count, summed
    /// over the series whose labels include `labels` (for tests).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric())
            .filter(|metric| {
                labels.iter().all(|(k, v)| {
                    metric
                        .get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            .map(|metric| {
                // A counter, a gauge, or a histogram's sample count: whichever
                // the family is (the others read as zero).
                metric.get_counter().get_value() as u64
                    + metric.get_gauge().get_value().max(0.0) as u64
                    + metric.get_histogram().get_sample_count()
            })
            .sum()
    }

    /// Text exposition of every metric.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
