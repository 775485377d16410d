//! A member for a flow of datagrams (QUIC), which has no connect to try
//! a member by.

use std::net::SocketAddr;

use super::Pool;
use super::balance;
use super::member::{Lease, clock};

impl Pool {
    /// A member for a flow of datagrams (QUIC): chosen as for a
    /// connection, without a connect to try it by (UDP has none; the
    /// active check is what keeps a dead member out). The lease counts the
    /// flow against the member until it ends.
    pub(crate) fn pick_datagram(&self, key: u64) -> Option<(SocketAddr, Lease)> {
        let members = self.members.load_full();
        let at = balance::Pick {
            key,
            tried: &[],
            now: clock(),
        };
        let i = balance::pick(self.config.balance, &members, &self.counter, at)?;
        let member = &members.entries[i].member;
        Some((member.addr, Lease::new(member.clone())))
    }
}
