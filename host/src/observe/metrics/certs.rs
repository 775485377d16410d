//! The series of certificates: when each expires (file-based or ACME), and
//! how ACME orders and TLS-ALPN-01 challenges went.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::{Metrics, names};

/// How an ACME order ended, for `limen_acme_orders_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderOutcome {
    /// A name's first certificate.
    Issued,
    /// A certificate replaced before it expired.
    Renewed,
    /// The order failed; the back-off retries it.
    Failed,
}

impl OrderOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OrderOutcome::Issued => "issued",
            OrderOutcome::Renewed => "renewed",
            OrderOutcome::Failed => "failed",
        }
    }
}

#[derive(Clone)]
pub(super) struct CertFamilies {
    expiry: IntGaugeVec,
    orders: IntCounterVec,
    challenges: IntCounterVec,
}

impl CertFamilies {
    pub(super) fn new(
        gauges: &dyn Fn(&str, &str, &[&str]) -> IntGaugeVec,
        counters: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec,
    ) -> CertFamilies {
        CertFamilies {
            expiry: gauges(
                names::CERTIFICATE_EXPIRY,
                "When a certificate's leaf expires (notAfter), in Unix seconds.",
                &["certificate"],
            ),
            orders: counters(
                names::ACME_ORDERS,
                "ACME orders, by certificate and outcome.",
                &["certificate", "outcome"],
            ),
            challenges: counters(
                names::ACME_CHALLENGES,
                "TLS-ALPN-01 validation connections answered by limen.",
                &["certificate"],
            ),
        }
    }
}

impl Metrics {
    /// `certificate`'s leaf expires at `not_after`; `None`: it has none
    /// (yet), or it is gone from the config.
    pub(crate) fn set_certificate_expiry(&self, certificate: &str, not_after: Option<i64>) {
        let family = &self.certs.expiry;
        match not_after {
            Some(at) => family.with_label_values(&[certificate]).set(at),
            None => {
                let _ = family.remove_label_values(&[certificate]);
            }
        }
    }

    /// Names that have an expiry series now.
    pub(crate) fn certificate_expiry_names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let families = self.certs.expiry.collect();
        let metrics = families.iter().flat_map(|f| f.get_metric());
        metrics
            .filter_map(|m| m.get_label().first().map(|l| l.value().to_owned()))
            .collect()
    }

    pub(crate) fn acme_order(&self, certificate: &str, outcome: OrderOutcome) {
        let labels = [certificate, outcome.as_str()];
        self.certs.orders.with_label_values(&labels).inc();
    }

    pub(crate) fn acme_challenge(&self, certificate: &str) {
        self.certs
            .challenges
            .with_label_values(&[certificate])
            .inc();
    }
}
