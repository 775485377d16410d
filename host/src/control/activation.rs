//! Listening sockets handed to limen at start: by systemd's socket
//! activation (sd_listen_fds(3): `LISTEN_PID` names this process,
//! `LISTEN_FDS` counts the sockets from fd 3 on, `LISTEN_FDNAMES`
//! optionally names them, colon-separated), or by the limen this one
//! upgrades (`handover`: each listener's sockets, one per worker of the
//! old process, and its admin, metrics and status endpoints, by name).
//!
//! A `[[listeners]]` entry takes the inherited sockets of its own name,
//! else those bound to its address with its transport; it then accepts on
//! them instead of binding. They are the same kernel objects the service
//! manager (or the old limen) listened on, so connections queued on them
//! wait there, not refused.
//!
//! The environment describes the process's file descriptors, so this is
//! process state: read once, at the first bind, and each socket given out
//! at most once; what the start leaves is closed (`close_untaken`).

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use socket2::{Socket, Type};

use crate::state::config::{ListenerConfig, Transport};

/// The first passed descriptor (SD_LISTEN_FDS_START).
const FIRST_FD: RawFd = 3;

/// One inherited socket (or an old limen's group of them, one per worker,
/// all on one address) not yet taken.
struct Inherited {
    name: Option<String>,
    /// From the limen this one upgrades (else from systemd).
    handed_over: bool,
    sockets: Vec<Socket>,
    local: Option<SocketAddr>,
    kind: Option<Type>,
}

impl Inherited {
    fn new(name: Option<String>, sockets: Vec<Socket>, handed_over: bool) -> Option<Inherited> {
        let first = sockets.first()?;
        // Not passed on to anything limen starts.
        for socket in &sockets {
            let _ = socket.set_cloexec(true);
        }
        Some(Inherited {
            name,
            handed_over,
            local: first.local_addr().ok().and_then(|a| a.as_socket()),
            kind: first.r#type().ok(),
            sockets,
        })
    }
}

static INHERITED: OnceLock<Mutex<Vec<Inherited>>> = OnceLock::new();

/// The inherited sockets for `config`, if this process was given some: by
/// the listener's name first, else by its address and transport.
pub(crate) fn take(config: &ListenerConfig) -> Option<Vec<Socket>> {
    let mut pool = pool();
    let kind = match config.transport {
        Transport::Quic => Type::DGRAM,
        _ => Type::STREAM,
    };
    // systemd's name wins whatever the address (its unit chose it); an old
    // limen's group only while the listener still binds where it did (or
    // asks for any port), so an edited `bind` takes effect at an upgrade.
    let same_place =
        |s: &Inherited| !s.handed_over || s.local == Some(config.bind) || config.bind.port() == 0;
    let by_name = pool
        .iter()
        .position(|s| s.name.as_deref() == Some(&*config.name) && same_place(s));
    let by_addr = || {
        pool.iter()
            .position(|s| s.local == Some(config.bind) && s.kind == Some(kind))
    };
    let at = by_name.or_else(by_addr)?;
    Some(pool.swap_remove(at).sockets)
}

/// The inherited socket named `name` (an old limen's endpoint:
/// [`ADMIN`], [`METRICS`], [`STATUS`]), if it is one socket.
pub(crate) fn take_named(name: &str) -> Option<Socket> {
    let mut pool = pool();
    let at = pool.iter().position(|s| s.name.as_deref() == Some(name))?;
    let mut sockets = pool.swap_remove(at).sockets;
    (sockets.len() == 1).then(|| sockets.remove(0))
}

/// The names an old limen gives its endpoints in a hand-over.
pub(crate) const ADMIN: &str = "limen:admin";
pub(crate) const METRICS: &str = "limen:metrics";
pub(crate) const STATUS: &str = "limen:status";

fn pool() -> std::sync::MutexGuard<'static, Vec<Inherited>> {
    let pool = INHERITED.get_or_init(|| {
        let mut given = from_env();
        let handed = super::handover::receive().into_iter();
        given
            .extend(handed.filter_map(|(name, sockets)| Inherited::new(Some(name), sockets, true)));
        Mutex::new(given)
    });
    pool.lock().unwrap_or_else(|p| p.into_inner())
}

/// Once limen has started: close the inherited sockets nothing took (no
/// listener, endpoint or address of this configuration names them), so
/// none holds a port, or queues connections, that nobody serves.
pub(crate) fn close_untaken() {
    let left: Vec<Inherited> = std::mem::take(&mut *pool());
    let names: Vec<String> = left
        .iter()
        .map(|s| match (&s.name, s.local) {
            (Some(name), _) => name.clone(),
            (None, Some(addr)) => addr.to_string(),
            (None, None) => "a socket with no address".to_owned(),
        })
        .collect();
    if !names.is_empty() {
        tracing::warn!(sockets = ?names, "process.inherited_unused");
    }
}

/// The sockets systemd passes to this process (none when
/// `LISTEN_PID` names another: a child that inherited the variables).
fn from_env() -> Vec<Inherited> {
    let var = |key| std::env::var(key).ok();
    let for_us = var("LISTEN_PID").and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let count = var("LISTEN_FDS").and_then(|n| n.parse::<RawFd>().ok());
    let (true, Some(count)) = (for_us, count) else {
        return Vec::new();
    };
    let names: Vec<String> = var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    (0..count.clamp(0, 1024))
        .filter_map(|i| {
            let fd = FIRST_FD + i;
            // SAFETY: the protocol hands this process fds 3..3+LISTEN_FDS,
            // open and owned by nobody else in it; `INHERITED` is filled
            // once, so each is wrapped once.
            #[allow(unsafe_code)]
            let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
            let name = names
                .get(i as usize)
                .filter(|n| !n.is_empty() && *n != "unknown")
                .cloned();
            Inherited::new(name, vec![socket], false)
        })
        .collect()
}
