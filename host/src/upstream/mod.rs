//! Turning a decision's upstream into a connected socket: resolve names
//! asynchronously, enforce the allow-list, connect with a timeout (or have
//! a pool pick and connect a member).

pub(crate) mod pool;
pub(crate) mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::decision::UpstreamAddr;
use crate::outcome::UpstreamFailure;
use crate::plan::{self, Refusal, Rules};
use crate::upstream::pool::{Lease, Pool, PoolError, Pools, Tries};

/// Why no upstream connection was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The allow-list does not cover it: the policy's fault.
    #[error("upstream {0} is not in the allow-list")]
    NotAllowed(String),
    /// The name did not resolve.
    #[error("cannot resolve {addr}: {error}")]
    Resolve { addr: String, error: io::Error },
    /// Every address refused or timed out.
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: io::Error },
    /// The TLS handshake with a re-encrypted upstream failed (verification,
    /// protocol, timeout).
    #[error("TLS to upstream {addr} failed: {error}")]
    Tls { addr: String, error: io::Error },
    /// A pool gave no connection.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl UpstreamError {
    /// Its metric label.
    pub(crate) fn reason(&self) -> UpstreamFailure {
        match self {
            UpstreamError::NotAllowed(_) => UpstreamFailure::NotAllowed,
            UpstreamError::Resolve { .. } => UpstreamFailure::Resolve,
            UpstreamError::Connect { error, .. } if error.kind() == io::ErrorKind::TimedOut => {
                UpstreamFailure::Timeout
            }
            UpstreamError::Connect { .. } => UpstreamFailure::Refused,
            UpstreamError::Tls { .. } => UpstreamFailure::Tls,
            UpstreamError::Pool(PoolError::NoMember(_)) => UpstreamFailure::NoMember,
            UpstreamError::Pool(PoolError::Connect { error, .. })
                if error.kind() == io::ErrorKind::TimedOut =>
            {
                UpstreamFailure::Timeout
            }
            UpstreamError::Pool(PoolError::Connect { .. }) => UpstreamFailure::Refused,
        }
    }
}

/// Where a decided connection goes: addresses resolved from what the
/// policy named, or a pool, which picks a member at connect time.
pub(crate) enum Dest {
    Addrs(Vec<SocketAddr>),
    Pool(Arc<Pool>),
}

/// A connected upstream, and the pool member it holds (if from a pool),
/// to be kept for the connection's life.
pub(crate) struct Connected {
    pub(crate) stream: TcpStream,
    pub(crate) lease: Option<Lease>,
}

/// Where `addr` leads: a pool, by its name (its member is picked at
/// connect time), or the addresses a name resolves to, or the address.
/// For a policy's decision (`trusted` false), what the allow-list does not
/// admit and a pool that does not exist are the decision's fault
/// (`Err(Refusal)`); for the operator's fallback (`trusted`), every failure
/// is one of reaching it (`Ok(Err(_))`: e.g. a name that resolves only to
/// limen's own listeners). The one lookup live connections make, for a
/// decision and for the fail mode alike.
pub(crate) async fn destination<C: ?Sized>(
    addr: &UpstreamAddr,
    pools: &Pools,
    rules: &Rules<'_, C>,
    trusted: bool,
    timeout: Duration,
) -> Result<Result<Dest, UpstreamError>, Refusal> {
    if let UpstreamAddr::Pool(name) = addr {
        return match pools.get(name) {
            Some(pool) => Ok(Ok(Dest::Pool(pool.clone()))),
            // The config check made sure a fallback's pool exists.
            None if trusted => Ok(Err(PoolError::NoMember(name.clone()).into())),
            None => Err(Refusal::UnknownPool(name.clone())),
        };
    }
    match resolve(addr, rules, trusted, timeout).await {
        Err(UpstreamError::NotAllowed(addr)) if !trusted => Err(Refusal::NotAllowed(addr)),
        other => Ok(other.map(Dest::Addrs)),
    }
}

/// Connect to `dest`: the first of its addresses that answers, or a member
/// of its pool (`key` for the hash balances) not in `tries` yet, within
/// `timeout` per try.
pub(crate) async fn connect_to(
    dest: &Dest,
    (key, tries): (u64, &mut Tries),
    timeout: Duration,
) -> Result<Connected, UpstreamError> {
    match dest {
        Dest::Addrs(addrs) => Ok(Connected {
            stream: connect(addrs, timeout).await?,
            lease: None,
        }),
        Dest::Pool(pool) => {
            let (stream, lease) = pool.connect(key, timeout, tries).await?;
            Ok(Connected {
                stream,
                lease: Some(lease),
            })
        }
    }
}

/// The addresses limen may connect to for `addr`: a policy's upstream after
/// `plan` accepted it, or (`trusted`: the allow-list does not apply) the
/// operator's fail-mode fallback. limen's own listeners are never among them.
pub(crate) async fn resolve<C: ?Sized>(
    addr: &UpstreamAddr,
    rules: &Rules<'_, C>,
    trusted: bool,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, UpstreamError> {
    let refused = || UpstreamError::NotAllowed(addr.to_string());
    let addrs = match addr {
        UpstreamAddr::Ip(ip) if trusted || plan::admits(rules, *ip, false) => vec![*ip],
        UpstreamAddr::Ip(_) => return Err(refused()),
        // Pools are looked up by the caller; `plan` checked the name.
        UpstreamAddr::Pool(_) => return Err(refused()),
        UpstreamAddr::Name(name, port) => {
            // `plan` already refused a name no rule could admit, so a policy
            // cannot make limen query DNS for names it could never use.
            let by_name = trusted || rules.allow.allows_name(name.as_ref(), *port);
            // Fully qualified, so resolv.conf search domains cannot turn the
            // name into another one.
            let fqdn = format!("{}.", name.as_ref());
            let lookup = tokio::net::lookup_host((fqdn.as_str(), *port));
            let resolved = within(timeout, "DNS lookup timed out", lookup)
                .await
                .map_err(|error| UpstreamError::Resolve {
                    addr: addr.to_string(),
                    error,
                })?;
            resolved
                .filter(|a| plan::admits(rules, *a, by_name))
                .collect()
        }
    };
    let addrs: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| !plan::is_own(rules.own, *a))
        .collect();
    if addrs.is_empty() {
        return Err(refused());
    }
    Ok(addrs)
}

/// `io` bounded by `timeout`; running out is a `TimedOut` error saying `what`.
pub(crate) async fn within<T>(
    timeout: Duration,
    what: &'static str,
    io: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(timeout, io)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, what)))
}

/// Connect to the first address that answers, all tries together bounded by
/// `timeout`.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, UpstreamError> {
    // The error is made only when every address failed: a custom
    // `io::Error` costs three allocations, too many for each connection.
    let mut last = None;
    let deadline = tokio::time::Instant::now() + timeout;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // The hello and small records should leave at once.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(error)) => last = Some(error),
            Err(_) => last = Some(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
    let error = last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"));
    let addr = addrs.first().map_or_else(String::new, ToString::to_string);
    Err(UpstreamError::Connect { addr, error })
}

/// A UDP socket connected to `upstream` from an ephemeral port of the
/// matching family, non-blocking: a QUIC flow's path, or a QUIC health
/// check.
pub(crate) fn udp_to(upstream: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.connect(upstream)?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}
