//! What a pool is configured with, validated: `config` reads
//! `[upstreams.pools.NAME]` and builds these.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::decision::UpstreamAddr;

/// Most addresses one DNS member may resolve to.
pub const MAX_RESOLVED: usize = 256;
/// The most connect retries one connection makes in a pool.
pub const MAX_RETRIES: u32 = 16;

/// One pool, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Its name, as a decision writes it (`[A-Za-z0-9_-]`, no dots).
    pub name: Arc<str>,
    /// Members in the order written.
    pub members: Vec<MemberConfig>,
    /// How a member is chosen.
    pub balance: Balance,
    /// Connect failures retried on another member (nothing was sent yet).
    pub retries: u32,
    /// A terminated plaintext connection's bytes from the client (up to
    /// 16 KiB) are replayed to another member if this one fails before its
    /// first byte. `false`: it commits to the member once the client sent
    /// anything (for members serving non-idempotent requests).
    pub replay_requests: bool,
    /// Active and passive health checking.
    pub health: HealthConfig,
    /// How often DNS members are resolved again.
    pub resolve_every: Duration,
}

/// A member as written: an address or a DNS name (each address it resolves
/// to becomes a member), and its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberConfig {
    /// `ip:port` or `name:port`.
    pub addr: UpstreamAddr,
    /// Relative share of new connections (1 to [`MAX_WEIGHT`]).
    pub weight: u32,
}

/// How a pool picks a member for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// In turn, in proportion to the weights (smooth: no bursts to one member).
    RoundRobin,
    /// The member with the fewest open connections per unit of weight.
    LeastConnections,
    /// Of two members drawn by weight, the one with fewer connections.
    RandomTwo,
    /// The same client address to the same member while the set is
    /// unchanged (rendezvous hashing: a change moves only its share).
    HashClient,
    /// The same for the SNI (no SNI: the client address).
    HashSni,
}

impl Balance {
    /// The config word.
    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConnections => "least_connections",
            Balance::RandomTwo => "random_two",
            Balance::HashClient => "hash_client",
            Balance::HashSni => "hash_sni",
        }
    }
}

/// `[upstreams.pools.NAME.health]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// The active check, if any (none: members are up unless ejected).
    pub check: Option<Check>,
    /// Time between checks of one member.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Consecutive passes that bring a down member up.
    pub rise: u32,
    /// Consecutive failures that take an up member down.
    pub fall: u32,
    /// Consecutive connect failures of live traffic that eject a member.
    pub eject_after: u32,
    /// How long an ejected member gets no new connection.
    pub eject_for: Duration,
}

/// What an active check does.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// A TCP connect.
    Tcp,
    /// A TLS handshake. `sni` is sent (the member's host when `None`); the
    /// certificate is verified against `ca` only when one is set.
    Tls {
        /// `check_sni`.
        sni: Option<String>,
        /// `ca`: a PEM bundle.
        ca: Option<PathBuf>,
    },
    /// A QUIC server's Version Negotiation, asked for by a datagram in a
    /// reserved version: for members that serve QUIC flows (UDP).
    Quic,
}
