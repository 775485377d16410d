//! The series of pools (per member, resolved when a member joins and
//! removed when it leaves) and of the limits policies use.

use std::net::SocketAddr;

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::{Metrics, names};
use crate::outcome::RetryReason;

#[derive(Clone)]
pub(super) struct PoolFamilies {
    member_healthy: IntGaugeVec,
    member_connections: IntGaugeVec,
    retries: IntCounterVec,
}

impl PoolFamilies {
    pub(super) fn new(
        gauges: &dyn Fn(&str, &str, &[&str]) -> IntGaugeVec,
        counters: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec,
    ) -> PoolFamilies {
        PoolFamilies {
            member_healthy: gauges(
                names::UPSTREAM_MEMBER_HEALTHY,
                "1 while a pool member passes its checks.",
                &["pool", "member"],
            ),
            member_connections: gauges(
                names::UPSTREAM_MEMBER_CONNECTIONS,
                "Connections open to a pool member.",
                &["pool", "member"],
            ),
            retries: counters(
                names::UPSTREAM_RETRIES,
                "Connections tried again on another pool member, by why the last try failed.",
                &["pool", "reason"],
            ),
        }
    }
}

pub(super) fn limit_counters(
    counters: &dyn Fn(&str, &str, &[&str]) -> IntCounterVec,
) -> LimitCounters {
    let limited = counters(
        names::POLICY_LIMITED,
        "Policy limit checks that said no.",
        &["kind"],
    );
    let single = |name: &str, help: &str| -> IntCounter {
        counters(name, help, &[]).with_label_values::<&str>(&[])
    };
    LimitCounters {
        rate_limited: limited.with_label_values(&["rate"]),
        slots_full: limited.with_label_values(&["slots"]),
        evicted: single(
            names::POLICY_LIMIT_EVICTIONS,
            "Limit keys pushed out by newer ones.",
        ),
    }
}

impl Metrics {
    /// A pool's retry counters, one per [`RetryReason`] (resolved when the
    /// pool is built).
    pub(crate) fn pool_retries(&self, pool: &str) -> [IntCounter; RetryReason::COUNT] {
        RetryReason::ALL.map(|reason| {
            let labels = [pool, reason.as_str()];
            self.upstream_pools.retries.with_label_values(&labels)
        })
    }

    /// A pool member's health and connection gauges.
    pub(crate) fn member_series(&self, pool: &str, member: SocketAddr) -> (IntGauge, IntGauge) {
        let labels = [pool, &member.to_string()];
        let families = &self.upstream_pools;
        (
            families.member_healthy.with_label_values(&labels),
            families.member_connections.with_label_values(&labels),
        )
    }

    /// A member left its pool: its series go.
    pub(crate) fn drop_member(&self, pool: &str, member: SocketAddr) {
        let labels = [pool, &member.to_string()];
        let _ = self
            .upstream_pools
            .member_healthy
            .remove_label_values(&labels);
        let _ = self
            .upstream_pools
            .member_connections
            .remove_label_values(&labels);
    }

    /// The counters of the limits policies use.
    pub fn limit_counters(&self) -> LimitCounters {
        self.limit_table.clone()
    }
}

/// What the table counts.
#[derive(Clone)]
pub struct LimitCounters {
    /// A `take` found the bucket empty.
    pub rate_limited: IntCounter,
    /// An `acquire` found every slot taken (or its set full of held slots).
    pub slots_full: IntCounter,
    /// A key pushed the least recently used one out.
    pub evicted: IntCounter,
}

impl LimitCounters {
    /// Counters registered nowhere (offline tools).
    pub fn detached() -> LimitCounters {
        let counter =
            || IntCounter::new("detached", "not exported").unwrap_or_else(|e| unreachable!("{e}"));
        LimitCounters {
            rate_limited: counter(),
            slots_full: counter(),
            evicted: counter(),
        }
    }
}
