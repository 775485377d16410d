//! QUIC's series: flows open and made, datagrams each way, and every
//! datagram limen did not route, by why.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::{Metrics, names};

#[derive(Clone)]
pub(super) struct QuicFamilies {
    flows: IntCounterVec,
    flows_active: IntGaugeVec,
    dropped: IntCounterVec,
    datagrams: IntCounterVec,
}

impl QuicFamilies {
    pub(super) fn new(
        gauges: &dyn Fn(&str, &str, &[&str]) -> IntGaugeVec,
        counters: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec,
    ) -> QuicFamilies {
        QuicFamilies {
            flows: counters(
                names::QUIC_FLOWS,
                "QUIC flows made (a client's Initial read, decided and carried out), by listener.",
                &["listener"],
            ),
            flows_active: gauges(
                names::QUIC_FLOWS_ACTIVE,
                "QUIC flows open now, by listener.",
                &["listener"],
            ),
            dropped: counters(
                names::QUIC_DROPPED,
                "Datagrams a QUIC listener dropped, by listener and reason.",
                &["listener", "reason"],
            ),
            datagrams: counters(
                names::QUIC_DATAGRAMS,
                "Datagrams relayed through QUIC flows, by direction (up: to the upstream).",
                &["listener", "direction"],
            ),
        }
    }
}

/// One QUIC listener's series, resolved once when its loop starts.
pub(crate) struct QuicMetrics {
    family: QuicFamilies,
    listener: String,
    pub(crate) flows: IntCounter,
    pub(crate) flows_active: IntGauge,
    pub(crate) up: IntCounter,
    pub(crate) down: IntCounter,
}

impl QuicMetrics {
    /// Count a datagram dropped for `reason` (a `QuicError::reason`, or one
    /// of the listener's own: `max_flows`, `max_pending`, ...).
    pub(crate) fn dropped(&self, reason: &str) {
        self.family
            .dropped
            .with_label_values(&[self.listener.as_str(), reason])
            .inc();
    }
}

impl Metrics {
    /// The series of QUIC listener `listener`.
    pub(crate) fn quic(&self, listener: &str) -> QuicMetrics {
        let family = self.quic.clone();
        QuicMetrics {
            flows: family.flows.with_label_values(&[listener]),
            flows_active: family.flows_active.with_label_values(&[listener]),
            up: family.datagrams.with_label_values(&[listener, "up"]),
            down: family.datagrams.with_label_values(&[listener, "down"]),
            listener: listener.to_owned(),
            family,
        }
    }
}
