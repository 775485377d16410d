//! One configuration generation: a validated configuration made ready
//! (limits, allow-list, certificates, pools, listener addresses, the access
//! log). Immutable; a reload builds the next one from it.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::observe::access::AccessLog;
use crate::observe::metrics::Metrics;
use crate::plan::Rules;
use crate::state::config::{AllowList, Config, FailMode, Limits};
use crate::state::tls::{CertStore, Tls};
use crate::upstream::pool::Pools;

/// One configuration generation. Immutable; a reload builds a new one.
pub(crate) struct Generation {
    pub(crate) limits: Limits,
    pub(crate) allow: AllowList,
    pub(crate) on_error: FailMode,
    pub(crate) metrics: Metrics,
    /// Where limen listens: never an upstream.
    pub(crate) own: Vec<SocketAddr>,
    /// Listener names and bound addresses.
    pub(crate) listeners: Vec<(Arc<str>, SocketAddr)>,
    /// The names of those that are QUIC (UDP) listeners.
    pub(crate) quic: Vec<Arc<str>>,
    /// Certificates for `terminate`, trust for re-encryption.
    pub(crate) tls: Tls,
    /// `[upstreams.pools]`, with their members' health.
    pub(crate) pools: Pools,
    /// 1 at start, +1 per applied reload.
    pub(crate) number: u64,
    /// This generation's access log, if on.
    pub(crate) access: Option<AccessLog>,
}

impl Generation {
    /// Assemble a generation from a validated `config` and what was made
    /// ready for it (by `control::ready`: certificates, pools, bound
    /// listeners, the access log).
    pub(crate) fn new(
        config: &Config,
        (tls, pools): (Tls, Pools),
        listeners: Vec<(Arc<str>, SocketAddr)>,
        metrics: Metrics,
        access: Option<AccessLog>,
        number: u64,
    ) -> Generation {
        Generation {
            limits: config.limits.clone(),
            allow: config.allow.clone(),
            on_error: config.policy.on_error.clone(),
            metrics,
            own: listeners.iter().map(|(_, addr)| *addr).collect(),
            listeners,
            quic: config
                .listeners
                .iter()
                .filter(|l| l.transport == crate::hello::Transport::Quic)
                .map(|l| l.name.clone())
                .collect(),
            tls,
            pools,
            number,
            access,
        }
    }

    /// Put every certificate's expiry in `limen_certificate_expiry_timestamp_seconds`
    /// (an ACME name's task updates its own as it renews); names gone from
    /// the config lose their series.
    pub(crate) fn publish_expiries(&self) {
        let mut current = Vec::new();
        for (name, expiry) in self.tls.certs.expiries() {
            self.metrics.set_certificate_expiry(name, expiry);
            current.push(name.to_string());
        }
        for name in self.metrics.certificate_expiry_names() {
            if !current.contains(&name) {
                self.metrics.set_certificate_expiry(&name, None);
            }
        }
    }

    /// What a decision is checked against in this generation.
    pub(crate) fn rules(&self) -> Rules<'_, CertStore> {
        Rules {
            allow: &self.allow,
            own: &self.own,
            certificates: &self.tls.certs,
            pools: self.pools.names(),
        }
    }
}
