//! `[limits]`: the bounds on each connection and on the listeners' queues,
//! checked once.

use std::time::Duration;

use super::ConfigError;
use super::file::FileLimits;

/// The largest `max_pending_hellos_per_client` (the budget's counters are
/// 16-bit).
pub(crate) const MAX_PENDING_HELLOS_PER_CLIENT: usize = u16::MAX as usize - 1;

/// Limits on each connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest ClientHello (all records) limen buffers.
    pub hello_max_bytes: usize,
    /// Time allowed for the whole ClientHello to arrive.
    pub hello_timeout: Duration,
    /// Default upstream connect timeout.
    pub connect_timeout: Duration,
    /// A proxied connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// On SIGINT/SIGTERM, how long open connections may take to finish.
    pub shutdown_grace: Duration,
    /// Connections handled at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// ClientHellos awaited at once per listener (at most half of
    /// `max_connections` applies); beyond it a new connection is reset at
    /// once. Past half of it, new connections get a shorter hello deadline.
    pub max_pending_hellos: usize,
    /// The same per client address (IPv6: per /64).
    pub max_pending_hellos_per_client: usize,
    /// The kernel's accept queue per listening socket (capped by
    /// `net.core.somaxconn`); applies to listeners bound after it is set.
    pub listen_backlog: u32,
    /// Copy buffer per direction.
    pub copy_buffer: usize,
    /// Time allowed for a terminated TLS handshake (client side, and the
    /// upstream side when re-encrypting).
    pub handshake_timeout: Duration,
    /// QUIC flows open at once, per listener; a new client beyond it is
    /// dropped, counted.
    pub max_flows: usize,
    /// QUIC Initials being read at once, per listener and worker.
    pub max_pending_initials: usize,
    /// The same per client address.
    pub max_pending_initials_per_client: usize,
    /// A QUIC flow with no datagram either way for this long is forgotten.
    pub flow_idle_timeout: Duration,
}

pub(super) fn limits(lim: &FileLimits) -> Result<Limits, ConfigError> {
    let invalid = ConfigError::Invalid;
    let hello_max_bytes = usize::try_from(lim.hello_max_bytes.as_u64()).unwrap_or(usize::MAX);
    if !(512..=1 << 20).contains(&hello_max_bytes) {
        return Err(invalid(
            "limits.hello_max_bytes must be between 512B and 1MiB".into(),
        ));
    }
    let copy_buffer = usize::try_from(lim.copy_buffer.as_u64()).unwrap_or(usize::MAX);
    if !(1024..=4 << 20).contains(&copy_buffer) {
        return Err(invalid(
            "limits.copy_buffer must be between 1KiB and 4MiB".into(),
        ));
    }
    for (name, value) in [
        ("max_connections", lim.max_connections),
        ("max_pending_hellos", lim.max_pending_hellos),
        (
            "max_pending_hellos_per_client",
            lim.max_pending_hellos_per_client,
        ),
        ("listen_backlog", lim.listen_backlog as usize),
        ("max_flows", lim.max_flows),
        ("max_pending_initials", lim.max_pending_initials),
        (
            "max_pending_initials_per_client",
            lim.max_pending_initials_per_client,
        ),
    ] {
        if value == 0 || value > 1_000_000 {
            return Err(invalid(format!(
                "limits.{name} must be between 1 and 1000000"
            )));
        }
    }
    if lim.max_pending_hellos_per_client > MAX_PENDING_HELLOS_PER_CLIENT {
        return Err(invalid(format!(
            "limits.max_pending_hellos_per_client must be at most {MAX_PENDING_HELLOS_PER_CLIENT}"
        )));
    }
    let day = Duration::from_secs(86_400);
    // A zero grace means "close at once"; a zero timeout would close everything.
    for (name, value, may_be_zero) in [
        ("hello_timeout", lim.hello_timeout, false),
        ("connect_timeout", lim.connect_timeout, false),
        ("idle_timeout", lim.idle_timeout, false),
        ("shutdown_grace", lim.shutdown_grace, true),
        ("handshake_timeout", lim.handshake_timeout, false),
        ("flow_idle_timeout", lim.flow_idle_timeout, false),
    ] {
        if (value.is_zero() && !may_be_zero) || value > day {
            return Err(invalid(format!(
                "limits.{name} must be more than 0 and at most 1 day"
            )));
        }
    }
    Ok(Limits {
        hello_max_bytes,
        hello_timeout: lim.hello_timeout,
        connect_timeout: lim.connect_timeout,
        idle_timeout: lim.idle_timeout,
        shutdown_grace: lim.shutdown_grace,
        max_connections: lim.max_connections,
        max_pending_hellos: lim.max_pending_hellos,
        max_pending_hellos_per_client: lim.max_pending_hellos_per_client,
        listen_backlog: lim.listen_backlog,
        copy_buffer,
        handshake_timeout: lim.handshake_timeout,
        max_flows: lim.max_flows,
        max_pending_initials: lim.max_pending_initials,
        max_pending_initials_per_client: lim.max_pending_initials_per_client,
        flow_idle_timeout: lim.flow_idle_timeout,
    })
}
