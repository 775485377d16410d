//! One connection's tries at a pool: connect to a member chosen by the
//! pool's `balance`; when the connect fails, or the member resets or closes
//! the connection before its first byte, try another, never the same one
//! twice and at most `retries` times in all.
//!
//! A retry is safe only while the member has answered nothing and limen
//! holds everything the client sent it: the caller (`path/action/first.rs`)
//! decides that; this file keeps the count and the member's health.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::{MAX_RETRIES, Members, Pick, Pool, PoolError, balance, clock};
use crate::outcome::RetryReason;
use crate::upstream::pool::Lease;

/// The members one connection has tried, as indices into the member set it
/// first read (kept, so the indices mean the same members even if DNS
/// changes the set meanwhile), and why the last try failed.
pub(crate) struct Tries {
    members: Option<Arc<Members>>,
    tried: [usize; MAX_RETRIES as usize + 1],
    count: usize,
    /// Counted (as the retry's reason) once another member is picked.
    failed: Option<RetryReason>,
}

impl Default for Tries {
    fn default() -> Tries {
        Tries {
            members: None,
            tried: [usize::MAX; MAX_RETRIES as usize + 1],
            count: 0,
            failed: None,
        }
    }
}

impl Pool {
    /// Connect to a member chosen by the pool's `balance` (`key`: the
    /// client address or SNI hash), trying others while `tries` has room
    /// when a connect fails or times out (`timeout` each). Nothing has been
    /// sent to a member that failed, so trying another is safe.
    pub(crate) async fn connect(
        &self,
        key: u64,
        timeout: Duration,
        tries: &mut Tries,
    ) -> Result<(TcpStream, Lease), PoolError> {
        let members = tries
            .members
            .get_or_insert_with(|| self.members.load_full())
            .clone();
        let mut last = None;
        while self.may_retry(tries) {
            let at = Pick {
                key,
                tried: &tries.tried[..tries.count],
                now: clock(),
            };
            let Some(i) = balance::pick(self.config.balance, &members, &self.counter, at) else {
                break;
            };
            tries.tried[tries.count] = i;
            tries.count += 1;
            if let Some(reason) = tries.failed.take() {
                self.retries[reason as usize].inc();
            }
            let member = &members.entries[i].member;
            let connect = tokio::time::timeout(timeout, TcpStream::connect(member.addr)).await;
            let (reason, error) = match connect {
                Ok(Ok(stream)) => {
                    member.connect_ok();
                    // The hello and small records should leave at once.
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, Lease::new(member.clone())));
                }
                Ok(Err(error)) => (RetryReason::Refused, error),
                Err(_) => (
                    RetryReason::Timeout,
                    io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                ),
            };
            last = Some((member.addr, error));
            tries.failed = Some(reason);
            self.member_failed(member);
        }
        Err(match last {
            Some((addr, error)) => PoolError::Connect {
                pool: self.name.clone(),
                addr,
                error,
            },
            None => PoolError::NoMember(self.name.clone()),
        })
    }

    /// Whether a terminated plaintext connection's first client bytes may
    /// be replayed to another member (`replay_requests`).
    pub(crate) fn replays_requests(&self) -> bool {
        self.config.replay_requests
    }

    /// Whether `tries` leaves room for another member.
    pub(crate) fn may_retry(&self, tries: &Tries) -> bool {
        let attempts = (self.config.retries as usize + 1).min(tries.tried.len());
        tries.count < attempts
    }

    /// The member behind `lease` failed once connected, before its first
    /// byte (`reason`): the reason the next try is counted under, and, but
    /// for a clean close, a failure toward its ejection, as a refused
    /// connect is.
    pub(crate) fn failed_before_answer(
        &self,
        lease: &Lease,
        reason: RetryReason,
        tries: &mut Tries,
    ) {
        tries.failed = Some(reason);
        // A clean close may be the member's own idle timeout (a client that
        // connected and sent nothing): retried, but not held against it, or
        // idle clients could eject healthy members.
        if reason != RetryReason::Closed {
            self.member_failed(lease.member());
        }
    }

    /// A try at `member` failed: passive ejection counts it.
    fn member_failed(&self, member: &super::Member) {
        let health = &self.config.health;
        if member.connect_failed(health.eject_after, health.eject_for) {
            tracing::warn!(
                target: "tls_sni", pool = &*self.name, member = %member.addr,
                failures = health.eject_after, eject_for = ?health.eject_for,
                "upstream.member_ejected"
            );
        }
    }
}
