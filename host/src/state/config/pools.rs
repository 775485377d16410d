//! `[upstreams.pools.NAME]`: groups of members a decision may name instead
//! of one address, how to balance over them and how to check them. Read
//! here as written, then checked into [`PoolConfig`]s.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::duration;
use crate::decision::{UpstreamAddr, is_pool_name};
use crate::upstream::pool::{Balance, Check, HealthConfig, MAX_RETRIES, MemberConfig, PoolConfig};

/// Most members one pool may list (a DNS name counts once here; the
/// addresses it resolves to are capped by [`crate::upstream::pool::MAX_RESOLVED`]).
pub(super) const MAX_MEMBERS: usize = 1024;
/// The largest weight: a round-robin schedule has one slot per unit.
pub(super) const MAX_WEIGHT: u32 = 256;

/// `[upstreams.pools.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePool {
    members: Vec<FileMember>,
    #[serde(default = "round_robin")]
    balance: Balance,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default = "yes")]
    replay_requests: bool,
    #[serde(default, deserialize_with = "duration_opt")]
    resolve_every: Option<Duration>,
    #[serde(default)]
    health: FileHealth,
}

fn round_robin() -> Balance {
    Balance::RoundRobin
}

fn yes() -> bool {
    true
}

/// `"10.0.0.1:443"` or `{ address = "...", weight = 2 }`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "\"host:port\" or { address = \"host:port\", weight = N }"
)]
enum FileMember {
    Bare(String),
    Weighted { address: String, weight: u32 },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileHealth {
    check: Option<String>,
    check_sni: Option<String>,
    ca: Option<PathBuf>,
    #[serde(deserialize_with = "duration")]
    interval: Duration,
    #[serde(deserialize_with = "duration")]
    timeout: Duration,
    rise: u32,
    fall: u32,
    eject_after: u32,
    #[serde(deserialize_with = "duration")]
    eject_for: Duration,
}

impl Default for FileHealth {
    fn default() -> Self {
        FileHealth {
            check: None,
            check_sni: None,
            ca: None,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
        }
    }
}

fn duration_opt<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    duration(de).map(Some)
}

/// Check every pool; `own` are limen's listener addresses (never a member).
pub(super) fn pools(
    file: &BTreeMap<String, FilePool>,
    own: &[SocketAddr],
) -> Result<Vec<PoolConfig>, ConfigError> {
    file.iter()
        .map(|(name, pool)| one(name, pool, own))
        .collect()
}

/// Whether a listener bound to `bind` takes connections to `addr` (the
/// live check, `plan::is_own`, also runs on every connect).
fn listens_on(bind: SocketAddr, addr: SocketAddr) -> bool {
    bind.port() == addr.port()
        && (bind.ip().is_unspecified() || bind.ip().to_canonical() == addr.ip().to_canonical())
}

fn one(name: &str, file: &FilePool, own: &[SocketAddr]) -> Result<PoolConfig, ConfigError> {
    let bad = |why: String| ConfigError::Invalid(format!("upstreams.pools.{name}: {why}"));
    if !is_pool_name(name) {
        return Err(bad(
            "a pool name is 1-64 of A-Z a-z 0-9 _ - (no dots)".into()
        ));
    }
    if file.members.is_empty() || file.members.len() > MAX_MEMBERS {
        return Err(bad(format!("members: 1 to {MAX_MEMBERS} entries")));
    }
    let mut seen = HashSet::new();
    let mut members = Vec::with_capacity(file.members.len());
    for member in &file.members {
        let (text, weight) = match member {
            FileMember::Bare(text) => (text, 1),
            FileMember::Weighted { address, weight } => (address, *weight),
        };
        let addr = match UpstreamAddr::parse(text) {
            Ok(addr @ (UpstreamAddr::Ip(_) | UpstreamAddr::Name(..))) => addr,
            _ => return Err(bad(format!("member `{text}` is not host:port"))),
        };
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(bad(format!("member `{text}`: weight 1 to {MAX_WEIGHT}")));
        }
        if let UpstreamAddr::Ip(ip) = addr
            && (ip.ip().is_unspecified() || own.iter().any(|l| listens_on(*l, ip)))
        {
            return Err(bad(format!(
                "member `{text}` is one of limen's own listeners"
            )));
        }
        if !seen.insert(addr.clone()) {
            return Err(bad(format!("member `{text}` is listed twice")));
        }
        members.push(MemberConfig { addr, weight });
    }
    let h = &file.health;
    let check = match h.check.as_deref() {
        None if h.check_sni.is_some() || h.ca.is_some() => {
            return Err(bad("health: check_sni and ca need check = \"tls\"".into()));
        }
        None => None,
        Some("tcp" | "quic") if h.check_sni.is_some() || h.ca.is_some() => {
            return Err(bad("health: check_sni and ca need check = \"tls\"".into()));
        }
        Some("tcp") => Some(Check::Tcp),
        Some("quic") => Some(Check::Quic),
        Some("tls") => {
            if let Some(sni) = &h.check_sni {
                rustls_pki_types::ServerName::try_from(sni.as_str())
                    .map_err(|_| bad(format!("health.check_sni `{sni}` is not a server name")))?;
            }
            Some(Check::Tls {
                sni: h.check_sni.clone(),
                ca: h.ca.clone(),
            })
        }
        Some(other) => {
            return Err(bad(format!(
                "health.check `{other}`: write \"tcp\", \"tls\" or \"quic\""
            )));
        }
    };
    if h.interval < Duration::from_millis(100) || h.timeout.is_zero() || h.timeout > h.interval {
        return Err(bad(
            "health: interval at least 100ms, timeout above 0 and at most the interval".into(),
        ));
    }
    if !(1..=100).contains(&h.rise) || !(1..=100).contains(&h.fall) {
        return Err(bad("health: rise and fall 1 to 100".into()));
    }
    if h.eject_after > 1000 || h.eject_for > Duration::from_secs(3600) {
        return Err(bad(
            "health: eject_after at most 1000 (0: off), eject_for at most 1h".into(),
        ));
    }
    let retries = file.retries.unwrap_or(2);
    if retries > MAX_RETRIES {
        return Err(bad(format!("retries at most {MAX_RETRIES}")));
    }
    let resolve_every = file.resolve_every.unwrap_or(Duration::from_secs(30));
    if resolve_every < Duration::from_secs(1) {
        return Err(bad("resolve_every at least 1s".into()));
    }
    Ok(PoolConfig {
        name: name.into(),
        members,
        balance: file.balance,
        retries,
        replay_requests: file.replay_requests,
        health: HealthConfig {
            check,
            interval: h.interval,
            timeout: h.timeout,
            rise: h.rise,
            fall: h.fall,
            eject_after: h.eject_after,
            eject_for: h.eject_for,
        },
        resolve_every,
    })
}
