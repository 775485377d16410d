//! Listening sockets handed to limen at start, as systemd's socket
//! activation hands them (sd_listen_fds(3)): `LISTEN_PID` names this
//! process, `LISTEN_FDS` counts the sockets from fd 3 on, and
//! `LISTEN_FDNAMES` (optional) names them, colon-separated.
//!
//! A `[[listeners]]` entry takes the inherited socket of its own name, else
//! the one bound to its address with its transport; it then accepts on that
//! socket instead of binding one. The socket is the service manager's, so
//! connections queued on it while limen restarts wait there, not refused.
//!
//! The environment describes the process's file descriptors, so this is
//! process state: read once, at the first bind, and each socket given out
//! at most once (a reload may take one the start left).

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use socket2::{Socket, Type};

use crate::state::config::{ListenerConfig, Transport};

/// The first passed descriptor (SD_LISTEN_FDS_START).
const FIRST_FD: RawFd = 3;

/// One inherited socket not yet taken.
struct Inherited {
    name: Option<String>,
    socket: Socket,
    local: Option<SocketAddr>,
    kind: Option<Type>,
}

static INHERITED: OnceLock<Mutex<Vec<Inherited>>> = OnceLock::new();

/// The inherited socket for `config`, if the service manager passed one:
/// by the listener's name first, else by its address and transport.
pub(crate) fn take(config: &ListenerConfig) -> Option<Socket> {
    let pool = INHERITED.get_or_init(|| Mutex::new(from_env()));
    let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    let kind = match config.transport {
        Transport::Quic => Type::DGRAM,
        _ => Type::STREAM,
    };
    let by_name = pool
        .iter()
        .position(|s| s.name.as_deref() == Some(&*config.name));
    let by_addr = || {
        pool.iter()
            .position(|s| s.local == Some(config.bind) && s.kind == Some(kind))
    };
    let at = by_name.or_else(by_addr)?;
    Some(pool.swap_remove(at).socket)
}

/// The inherited sockets no listener has taken, by name or address.
pub(crate) fn untaken() -> Vec<String> {
    let Some(pool) = INHERITED.get() else {
        return Vec::new();
    };
    let pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    pool.iter()
        .map(|s| match (&s.name, s.local) {
            (Some(name), _) => name.clone(),
            (None, Some(addr)) => addr.to_string(),
            (None, None) => "a socket with no address".to_owned(),
        })
        .collect()
}

/// The sockets the environment passes to this process (none when
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
        .map(|i| {
            let fd = FIRST_FD + i;
            // SAFETY: the protocol hands this process fds 3..3+LISTEN_FDS,
            // open and owned by nobody else in it; `INHERITED` is filled
            // once, so each is wrapped once.
            #[allow(unsafe_code)]
            let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
            // Not passed on to anything limen starts.
            let _ = socket.set_cloexec(true);
            let name = names
                .get(i as usize)
                .filter(|n| !n.is_empty() && *n != "unknown")
                .cloned();
            Inherited {
                name,
                local: socket.local_addr().ok().and_then(|a| a.as_socket()),
                kind: socket.r#type().ok(),
                socket,
            }
        })
        .collect()
}
