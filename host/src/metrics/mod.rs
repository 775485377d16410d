//! Counters for what happens to connections, in a registry owned here, and
//! their Prometheus exposition at `/metrics` (`endpoint`, `scrape`).
//!
//! Names are constants; label values come from the error types' `reason()`
//! and `kind()`.

pub(crate) mod endpoint;
mod scrape;

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Metric names.
pub mod names {
    /// Connections accepted, by listener.
    pub const CONNECTIONS: &str = "limen_connections_total";
    /// ClientHellos that could not be gathered, by listener and reason.
    pub const PARSE_FAILURES: &str = "limen_tls_sni_listener_parse_failures_total";
    /// Policy failures, by kind.
    pub const POLICY_FAILURES: &str = "limen_policy_failures_total";
    /// Upstream connection failures, by reason.
    pub const UPSTREAM_FAILURES: &str = "limen_upstream_connect_failures_total";
    /// Terminated handshakes that failed, by listener and reason.
    pub const HANDSHAKE_FAILURES: &str = "limen_tls_handshake_failures_total";
    /// Bytes proxied, by direction (`up`: client to upstream).
    pub const BYTES: &str = "limen_bytes_total";
    /// Policy swap attempts, by trigger (`file`, `admin`, `reload`) and
    /// outcome (`applied`, `refused`, `unchanged`).
    pub const POLICY_SWAPS: &str = "limen_policy_swaps_total";
    /// 1 for the live policy's version.
    pub const POLICY_INFO: &str = "limen_policy_info";
    /// Configuration reloads (SIGHUP), by outcome (`applied`, `refused`).
    pub const CONFIG_RELOADS: &str = "limen_config_reloads_total";
}

/// limen's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub(crate) connections: IntCounterVec,
    pub(crate) parse_failures: IntCounterVec,
    pub(crate) policy_failures: IntCounterVec,
    pub(crate) upstream_failures: IntCounterVec,
    pub(crate) handshake_failures: IntCounterVec,
    /// `bytes{direction="up"}` and `"down"`, resolved once: they move on every connection.
    pub(crate) bytes_up: IntCounter,
    pub(crate) bytes_down: IntCounter,
    pub(crate) policy_swaps: IntCounterVec,
    pub(crate) config_reloads: IntCounterVec,
    policy_info: IntGaugeVec,
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
            let _ = registry.register(Box::new(counter.clone()));
            counter
        };
        let bytes = vec(names::BYTES, "Bytes proxied.", &["direction"]);
        Metrics {
            bytes_up: bytes.with_label_values(&["up"]),
            bytes_down: bytes.with_label_values(&["down"]),
            connections: vec(names::CONNECTIONS, "Connections accepted.", &["listener"]),
            parse_failures: vec(
                names::PARSE_FAILURES,
                "ClientHellos not gathered.",
                &["listener", "reason"],
            ),
            policy_failures: vec(names::POLICY_FAILURES, "Policy call failures.", &["kind"]),
            upstream_failures: vec(
                names::UPSTREAM_FAILURES,
                "Upstream connect failures.",
                &["reason"],
            ),
            handshake_failures: vec(
                names::HANDSHAKE_FAILURES,
                "Terminated TLS handshakes that failed.",
                &["listener", "reason"],
            ),
            policy_swaps: vec(
                names::POLICY_SWAPS,
                "Policy swap attempts.",
                &["trigger", "outcome"],
            ),
            config_reloads: vec(
                names::CONFIG_RELOADS,
                "Configuration reloads.",
                &["outcome"],
            ),
            policy_info: {
                let gauge = IntGaugeVec::new(
                    Opts::new(names::POLICY_INFO, "The live policy's version."),
                    &["version"],
                )
                .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
                let _ = registry.register(Box::new(gauge.clone()));
                gauge
            },
            registry,
        }
    }

    /// Make `version` the one live version in `limen_policy_info`.
    pub(crate) fn set_policy_version(&self, version: &str) {
        self.policy_info.reset();
        self.policy_info.with_label_values(&[version]).set(1);
    }

    /// The value of one counter (for tests and `limen explain`).
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
            .map(|metric| metric.get_counter().get_value() as u64)
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
