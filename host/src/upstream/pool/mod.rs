//! Upstream pools: members, the choice among them (`balance`), a
//! connection's tries (`tries`: retries before a member's first byte),
//! passive ejection, and active checks (`health`).
//!
//! A [`Pools`] belongs to one configuration generation and is built from
//! the one before it, keeping the [`Member`] (and so the health) of every
//! member that stays. The member set of a pool is one immutable snapshot
//! swapped whole when DNS answers change; connections read it with a
//! lock-free load.

mod balance;
mod datagram;
mod health;
mod member;
mod settings;
#[cfg(test)]
mod tests;
mod tries;

pub use settings::{
    Balance, Check, HealthConfig, MAX_RESOLVED, MAX_RETRIES, MemberConfig, PoolConfig,
};

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::IntCounter;
use rustls_pki_types::ServerName;
use tokio_util::sync::CancellationToken;

use crate::decision::UpstreamAddr;
use crate::observe::metrics::Metrics;
use crate::plan;
use crate::upstream::tls::TlsError;
pub(crate) use balance::Pick;
pub(crate) use member::{Lease, Member, clock};
pub(crate) use tries::Tries;

/// Every pool of one generation, by name.
#[derive(Default)]
pub(crate) struct Pools {
    by_name: HashMap<Arc<str>, Arc<Pool>>,
    /// Sorted, for `plan::Rules`.
    names: Vec<Arc<str>>,
}

/// One pool.
pub(crate) struct Pool {
    pub(crate) name: Arc<str>,
    config: PoolConfig,
    members: ArcSwap<Members>,
    /// Round-robin position (and the draw counter of `random_two`).
    counter: AtomicUsize,
    /// Retries, by [`RetryReason`](crate::outcome::RetryReason).
    retries: [IntCounter; crate::outcome::RetryReason::COUNT],
    metrics: Metrics,
    /// Ends this pool's check task (when a newer generation takes over).
    retired: CancellationToken,
    /// limen's listeners: a name resolving to one is no member (it would loop).
    own: Vec<SocketAddr>,
}

/// One snapshot of a pool's member set.
pub(crate) struct Members {
    pub(crate) entries: Vec<Entry>,
    /// Member indices, each `weight` times, interleaved (round robin).
    pub(crate) schedule: Vec<u32>,
}

/// A member and its weight in this pool.
pub(crate) struct Entry {
    pub(crate) member: Arc<Member>,
    pub(crate) weight: u32,
    /// The `[upstreams.pools]` entry it came from (a name gives several).
    pub(crate) from: usize,
}

/// Why a pool gave no connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// Every member is down or ejected.
    #[error("pool {0} has no usable member")]
    NoMember(Arc<str>),
    /// The members tried all failed; the last one's error.
    #[error("cannot connect to {addr} (pool {pool}): {error}")]
    Connect {
        pool: Arc<str>,
        addr: SocketAddr,
        error: io::Error,
    },
}

impl Pools {
    /// Build every pool of `configs`, keeping the members (and their
    /// health) `previous` has for the same pool, address and host, and
    /// resolving DNS members (each lookup bounded by `timeout`; a failed one
    /// keeps what the name resolved to before). Addresses in `own` (limen's
    /// listeners) are never members. Checks start at once.
    pub(crate) async fn build(
        configs: &[PoolConfig],
        previous: Option<&Pools>,
        (own, timeout): (&[SocketAddr], Duration),
        metrics: &Metrics,
    ) -> Result<Pools, TlsError> {
        let mut pools = Pools::default();
        for config in configs {
            let old = previous.and_then(|p| p.by_name.get(&config.name));
            let checker = health::Checker::new(&config.health).await?;
            // The old task stops before its members are read: a refresh it
            // made meanwhile would be lost, and two tasks would check them.
            if let Some(old) = old {
                old.retired.cancel();
            }
            let mut resolved = Vec::with_capacity(config.members.len());
            for member in &config.members {
                let addrs = resolve(member, timeout, &config.name).await;
                let addrs =
                    addrs.unwrap_or_else(|| old.map_or_else(Vec::new, |o| o.addrs_of(member)));
                resolved.push(not_own(addrs, own, &config.name));
            }
            let known = old.map(|o| o.members.load_full());
            let members = assemble(config, &resolved, known.as_deref(), metrics);
            if config.health.check.is_none() {
                // No active check any more: nothing would bring a member
                // the old one took down back up.
                for entry in &members.entries {
                    entry.member.assume_up();
                }
            }
            let pool = Arc::new(Pool {
                name: config.name.clone(),
                config: config.clone(),
                members: ArcSwap::from_pointee(members),
                counter: AtomicUsize::new(0),
                retries: metrics.pool_retries(&config.name),
                metrics: metrics.clone(),
                retired: CancellationToken::new(),
                own: own.to_vec(),
            });
            health::spawn(&pool, checker);
            pools.names.push(config.name.clone());
            pools.by_name.insert(config.name.clone(), pool);
        }
        if let Some(previous) = previous {
            previous.retire(&pools);
        }
        Ok(pools)
    }

    /// The pool named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Pool>> {
        self.by_name.get(name)
    }

    /// Every pool, by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.names.iter().filter_map(|n| self.by_name.get(n))
    }

    /// Every pool's name, sorted.
    pub(crate) fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// `next` replaces these: stop their checks (`next` checks what stays)
    /// and drop the series of members that did not stay.
    fn retire(&self, next: &Pools) {
        for pool in self.by_name.values() {
            pool.retired.cancel();
            let kept = next.by_name.get(&pool.name).map(|p| p.members.load_full());
            drop_series(pool, &pool.members.load(), kept.as_deref());
        }
    }
}

impl Pool {
    /// Whether some member may take a connection now.
    pub(crate) fn has_usable(&self) -> bool {
        let now = clock();
        self.members
            .load()
            .entries
            .iter()
            .any(|e| e.member.usable(now))
    }

    /// What `member` (a configured one) stands for in this pool now.
    fn addrs_of(&self, member: &MemberConfig) -> Vec<SocketAddr> {
        let members = self.members.load();
        let from = |e: &&Entry| {
            self.config
                .members
                .get(e.from)
                .is_some_and(|m| m.addr == member.addr)
        };
        members
            .entries
            .iter()
            .filter(from)
            .map(|e| e.member.addr)
            .collect()
    }

    /// The hash key of a connection for this pool's `balance` (0 when the
    /// balance does not hash).
    pub(crate) fn key(&self, client: IpAddr, sni: Option<&str>) -> u64 {
        match (self.config.balance, sni) {
            (Balance::HashSni, Some(sni)) => balance::FIXED.hash_one(sni),
            (Balance::HashClient | Balance::HashSni, _) => balance::FIXED.hash_one(client),
            _ => 0,
        }
    }

    /// How it picks a member.
    pub(crate) fn balance(&self) -> Balance {
        self.config.balance
    }

    /// The current member set.
    pub(crate) fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }
}

/// Addresses that are not limen's own listeners (a DNS member could
/// resolve to one, and its connections would loop back into limen).
fn not_own(addrs: Vec<SocketAddr>, own: &[SocketAddr], pool: &str) -> Vec<SocketAddr> {
    let (own, kept): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| plan::is_own(own, *a));
    for addr in own {
        tracing::warn!(target: "tls_sni", pool, member = %addr, "upstream.member_is_limen");
    }
    kept
}

/// Remove the series of the members of `old` not in `kept` (series are
/// named by pool and address, so an address that stays keeps its series).
fn drop_series(pool: &Pool, old: &Members, kept: Option<&Members>) {
    for entry in &old.entries {
        let stays =
            kept.is_some_and(|k| k.entries.iter().any(|e| e.member.addr == entry.member.addr));
        if !stays {
            pool.metrics.drop_member(&pool.name, entry.member.addr);
        }
    }
}

/// What one configured member stands for now: its addresses (one for an
/// address; what a name resolved to). `None`: the lookup failed.
async fn resolve(member: &MemberConfig, timeout: Duration, pool: &str) -> Option<Vec<SocketAddr>> {
    Some(match &member.addr {
        UpstreamAddr::Ip(ip) => vec![*ip],
        UpstreamAddr::Name(name, port) => {
            // As the operator wrote it (resolv.conf's search domains apply,
            // as for a short Kubernetes service name); names a policy
            // writes are resolved fully qualified instead (`upstream/mod.rs`).
            let lookup = tokio::net::lookup_host((name.as_ref(), *port));
            let lookup = tokio::time::timeout(timeout, lookup);
            match lookup.await {
                Ok(Ok(addrs)) => {
                    let mut addrs: Vec<SocketAddr> = addrs.take(MAX_RESOLVED).collect();
                    addrs.sort();
                    addrs.dedup();
                    addrs
                }
                Ok(Err(error)) => {
                    tracing::warn!(
                        target: "tls_sni", pool, member = %member.addr, %error,
                        "upstream.resolve_failed"
                    );
                    return None;
                }
                Err(_) => {
                    tracing::warn!(
                        target: "tls_sni", pool, member = %member.addr, error = "timed out",
                        "upstream.resolve_failed"
                    );
                    return None;
                }
            }
        }
        // Refused by the config check: members are addresses or names.
        UpstreamAddr::Pool(_) => Vec::new(),
    })
}

/// The member set for `resolved` (each configured member's addresses),
/// reusing the members `known` has at the same address.
fn assemble(
    config: &PoolConfig,
    resolved: &[Vec<SocketAddr>],
    known: Option<&Members>,
    metrics: &Metrics,
) -> Members {
    let mut entries: Vec<Entry> = Vec::new();
    for (from, (member, addrs)) in config.members.iter().zip(resolved).enumerate() {
        for &addr in addrs {
            // A name may resolve to an address another member also has.
            if entries.iter().any(|e| e.member.addr == addr) {
                continue;
            }
            let host = host_of(&member.addr, addr);
            // The same address under another written name is another TLS
            // identity: a new member.
            let same = |e: &&Entry| e.member.addr == addr && e.member.host == host;
            let reused = known.and_then(|k| k.entries.iter().find(same));
            let member_state = match reused {
                Some(entry) => entry.member.clone(),
                None => Arc::new(Member::new(
                    addr,
                    host,
                    metrics.member_series(&config.name, addr),
                )),
            };
            entries.push(Entry {
                member: member_state,
                weight: member.weight,
                from,
            });
        }
    }
    let weights: Vec<u32> = entries.iter().map(|e| e.weight).collect();
    Members {
        schedule: balance::schedule(&weights),
        entries,
    }
}

/// The TLS name of a member: the name written, or the address.
fn host_of(written: &UpstreamAddr, addr: SocketAddr) -> ServerName<'static> {
    match written {
        UpstreamAddr::Name(name, _) => ServerName::DnsName(name.clone()),
        _ => ServerName::IpAddress(addr.ip().into()),
    }
}
