//! Clients whose Initial is still being read (or decided): each one's
//! reader and the datagrams held to be replayed, bounded in number per
//! listener socket and per client address, and in time by `hello_timeout`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use crate::hello::InitialReader;
use crate::state::live::Snapshot;

/// Datagrams held for one client while its hello is read and decided: a
/// post-quantum hello takes two, a retransmitting client a few more.
pub(super) const MAX_HELD: usize = 16;
/// And their bytes: Initials are about 1,200-1,500 each, so 32 KiB is a
/// generous flight while 1,024 forged clients hold at most 32 MiB.
pub(super) const MAX_HELD_BYTES: usize = 32 << 10;

/// One client's Initial in progress.
pub(super) struct Pending {
    pub(super) reader: InitialReader,
    /// Every datagram received from the client so far, in order.
    pub(super) held: Vec<Box<[u8]>>,
    /// The held datagrams' bytes: bounded by [`MAX_HELD_BYTES`], and the base
    /// of the 3x limit on what an unvalidated address may
    /// be sent (RFC 9000 §8.1).
    pub(super) received: usize,
    /// When the first datagram came, and when the hello must be in.
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    /// The hello is complete and the policy is deciding.
    pub(super) deciding: bool,
    /// The configuration and policy live when the first datagram came: a
    /// swap while reading does not change what decides it.
    pub(super) snapshot: Arc<Snapshot>,
}

impl Pending {
    /// Keep `datagram` to replay (the caller checked the bounds).
    pub(super) fn hold(&mut self, datagram: &[u8]) {
        self.held.push(datagram.into());
        self.received += datagram.len();
    }
}

/// Why a new client was not admitted.
#[derive(Debug, Clone, Copy)]
pub(super) enum Full {
    Listener,
    Client,
}

impl Full {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Full::Listener => "max_pending_initials",
            Full::Client => "max_pending_initials_per_client",
        }
    }
}

/// Every pending client of one worker's socket.
#[derive(Default)]
pub(super) struct PendingTable {
    by_client: HashMap<SocketAddr, Pending>,
    per_ip: HashMap<IpAddr, usize>,
}

impl PendingTable {
    pub(super) fn get_mut(&mut self, client: &SocketAddr) -> Option<&mut Pending> {
        self.by_client.get_mut(client)
    }

    /// Room for one more client from `client`'s address?
    pub(super) fn admit(
        &self,
        client: SocketAddr,
        (total, per_client): (usize, usize),
    ) -> Result<(), Full> {
        if self.by_client.len() >= total {
            return Err(Full::Listener);
        }
        if self.per_ip.get(&client.ip()).copied().unwrap_or(0) >= per_client {
            return Err(Full::Client);
        }
        Ok(())
    }

    pub(super) fn insert(&mut self, client: SocketAddr, pending: Pending) {
        if self.by_client.insert(client, pending).is_none() {
            *self.per_ip.entry(client.ip()).or_default() += 1;
        }
    }

    pub(super) fn remove(&mut self, client: &SocketAddr) -> Option<Pending> {
        let pending = self.by_client.remove(client)?;
        if let Some(count) = self.per_ip.get_mut(&client.ip()) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&client.ip());
            }
        }
        Some(pending)
    }

    /// Clients still reading past their deadline (not those deciding: the
    /// policy call has its own deadline).
    pub(super) fn expired(&self, now: Instant) -> Vec<SocketAddr> {
        self.by_client
            .iter()
            .filter(|(_, p)| !p.deciding && p.deadline <= now)
            .map(|(client, _)| *client)
            .collect()
    }
}
