//! A pool's background task: the active check of every member each
//! `interval` (TCP connect, a TLS handshake, or a QUIC Version
//! Negotiation), and DNS members resolved
//! again each `resolve_every`. It holds the pool weakly and ends when the
//! pool is dropped or a newer generation retires it.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::member::clock;
use super::{Check, HealthConfig};
use super::{Member, Pool, assemble, drop_series, not_own, resolve};
use crate::decision::UpstreamAddr;
use crate::hello::{is_version_negotiation, version_probe};
use crate::upstream::tls::{TlsError, check_connector};

/// How a pool's members are checked.
pub(super) enum Checker {
    /// No active check.
    None,
    /// A TCP connect.
    Tcp,
    /// A TLS handshake with this connector, sending `sni` (or the member's host).
    Tls {
        connector: TlsConnector,
        sni: Option<ServerName<'static>>,
    },
    /// A QUIC Version Negotiation.
    Quic,
}

impl Checker {
    /// Prepare the check `health` asks for (reading its CA, if any, on a
    /// blocking thread).
    pub(super) async fn new(health: &HealthConfig) -> Result<Checker, TlsError> {
        Ok(match &health.check {
            None => Checker::None,
            Some(Check::Tcp) => Checker::Tcp,
            Some(Check::Quic) => Checker::Quic,
            Some(Check::Tls { sni, ca }) => {
                let ca = ca.clone();
                let connector = tokio::task::spawn_blocking(move || {
                    check_connector(ca.as_deref().map(Path::new))
                })
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
                let sni = sni
                    .as_deref()
                    .and_then(|s| ServerName::try_from(s.to_owned()).ok());
                Checker::Tls { connector, sni }
            }
        })
    }

    /// Check one member: `Ok` if it passed, else why not.
    async fn check(&self, member: &Member, timeout: Duration) -> Result<(), String> {
        if let Checker::Quic = self {
            return tokio::time::timeout(timeout, quic_check(member.addr))
                .await
                .unwrap_or_else(|_| Err(format!("no Version Negotiation within {timeout:?}")));
        }
        let run = async {
            let stream = TcpStream::connect(member.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            if let Checker::Tls { connector, sni } = self {
                let name = sni.clone().unwrap_or_else(|| member.host.clone());
                connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("tls: {e}"))?;
            }
            Ok(())
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    }
}

/// Ask `addr` for a Version Negotiation (see `hello::version_probe`): a
/// QUIC server answers it at once and keeps nothing.
async fn quic_check(addr: std::net::SocketAddr) -> Result<(), String> {
    let socket = crate::upstream::udp_to(addr).map_err(|e| format!("socket: {e}"))?;
    // IDs need not be secret: they only pair the answer with the question.
    let (dcid, scid) = (clock().to_be_bytes(), (addr.port() as u64).to_be_bytes());
    let probe = version_probe(&dcid, &scid).ok_or("probe")?;
    socket
        .send(&probe)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = [0u8; 1500];
    loop {
        let n = socket
            .recv(&mut reply)
            .await
            .map_err(|e| format!("recv: {e}"))?;
        if is_version_negotiation(&reply[..n], &dcid, &scid) {
            return Ok(());
        }
    }
}

/// Start `pool`'s task if it has anything to do: an active check, or DNS
/// members to resolve again.
pub(super) fn spawn(pool: &Arc<Pool>, checker: Checker) {
    let has_names = pool
        .config
        .members
        .iter()
        .any(|m| matches!(m.addr, UpstreamAddr::Name(..)));
    if matches!(checker, Checker::None) && !has_names {
        return;
    }
    let retired = pool.retired.clone();
    let task = run(Arc::downgrade(pool), Arc::new(checker), has_names);
    tokio::spawn(async move {
        tokio::select! {
            () = task => {}
            () = retired.cancelled() => {}
        }
    });
}

async fn run(pool: Weak<Pool>, checker: Arc<Checker>, has_names: bool) {
    let mut resolved_at = Instant::now();
    loop {
        let Some(strong) = pool.upgrade() else { return };
        let health = strong.config.health.clone();
        let resolve_every = strong.config.resolve_every;
        if !matches!(*checker, Checker::None) {
            check_all(&strong, &checker, &health).await;
        }
        if has_names && resolved_at.elapsed() >= resolve_every {
            resolved_at = Instant::now();
            refresh(&strong, health.timeout).await;
        }
        drop(strong);
        let wait = if matches!(*checker, Checker::None) {
            resolve_every
        } else {
            health.interval
        };
        tokio::time::sleep(wait).await;
    }
}

/// Check every member at once and apply the results.
async fn check_all(pool: &Pool, checker: &Arc<Checker>, health: &HealthConfig) {
    let members = pool.members();
    let mut checks = JoinSet::new();
    for entry in &members.entries {
        let (member, checker) = (entry.member.clone(), checker.clone());
        let timeout = health.timeout;
        checks.spawn(async move {
            let result = checker.check(&member, timeout).await;
            (member, result)
        });
    }
    while let Some(done) = checks.join_next().await {
        let Ok((member, result)) = done else { continue };
        match member.checked(result.is_ok(), health.rise, health.fall) {
            Some(true) => tracing::info!(
                target: "tls_sni", pool = &*pool.name, member = %member.addr,
                checks = health.rise, "upstream.member_up"
            ),
            Some(false) => tracing::warn!(
                target: "tls_sni", pool = &*pool.name, member = %member.addr,
                checks = health.fall, reason = result.err().as_deref().unwrap_or(""),
                "upstream.member_down"
            ),
            None => {}
        }
    }
}

/// Resolve the pool's names again; when the answers changed, swap in the
/// new member set (members that stay keep their state).
async fn refresh(pool: &Pool, timeout: Duration) {
    let current = pool.members();
    let mut resolved = Vec::with_capacity(pool.config.members.len());
    for (from, member) in pool.config.members.iter().enumerate() {
        // A failed lookup keeps what the name resolved to before.
        let kept = || {
            let entries = current.entries.iter().filter(|e| e.from == from);
            entries.map(|e| e.member.addr).collect()
        };
        let addrs = resolve(member, timeout, &pool.name).await;
        resolved.push(not_own(addrs.unwrap_or_else(kept), &pool.own, &pool.name));
    }
    let same = {
        // Which configured member each address came from matters too: it
        // carries the weight and the TLS name.
        let from = resolved.iter().enumerate();
        let mut now: Vec<_> = from
            .flat_map(|(i, a)| a.iter().map(move |a| (i, *a)))
            .collect();
        let mut before: Vec<_> = current
            .entries
            .iter()
            .map(|e| (e.from, e.member.addr))
            .collect();
        now.sort();
        now.dedup_by_key(|(_, a)| *a);
        before.sort();
        now == before
    };
    if same {
        return;
    }
    let next = assemble(&pool.config, &resolved, Some(&current), &pool.metrics);
    tracing::info!(
        target: "tls_sni", pool = &*pool.name, members = next.entries.len(),
        before = current.entries.len(), "upstream.members_resolved"
    );
    let next = Arc::new(next);
    pool.members.store(next.clone());
    drop_series(pool, &current, Some(&next));
}
