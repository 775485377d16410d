//! Turning a decision's upstream into a connected socket: resolve names
//! asynchronously, enforce the allow-list, connect with a timeout.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::AllowList;
use crate::decision::UpstreamAddr;

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
}

impl UpstreamError {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            UpstreamError::NotAllowed(_) => "not_allowed",
            UpstreamError::Resolve { .. } => "resolve",
            UpstreamError::Connect { error, .. } if error.kind() == io::ErrorKind::TimedOut => {
                "timeout"
            }
            UpstreamError::Connect { .. } => "refused",
            UpstreamError::Tls { .. } => "tls",
        }
    }
}

/// Where limen itself listens: an upstream there would loop connections
/// back into limen until every permit is taken.
pub(crate) struct Own<'a>(pub(crate) &'a [SocketAddr]);

impl Own<'_> {
    fn is_self(&self, addr: SocketAddr) -> bool {
        addr.ip().is_unspecified()
            || self.0.iter().any(|l| {
                l.port() == addr.port()
                    && (l.ip().is_unspecified()
                        || l.ip().to_canonical() == addr.ip().to_canonical())
            })
    }
}

/// The addresses limen may connect to for `addr`. `trusted` skips the
/// allow-list, for upstreams the operator wrote (the fail-mode fallback).
pub(crate) async fn resolve(
    addr: &UpstreamAddr,
    allow: &AllowList,
    own: &Own<'_>,
    trusted: bool,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, UpstreamError> {
    let refused = || UpstreamError::NotAllowed(addr.to_string());
    let addrs = match addr {
        UpstreamAddr::Ip(ip) if trusted || allow.allows_addr(*ip) => vec![*ip],
        UpstreamAddr::Ip(_) => return Err(refused()),
        UpstreamAddr::Name(name, port) => {
            let by_name = trusted || allow.allows_name(name.as_ref(), *port);
            // A policy must not be able to make limen query DNS for names it
            // could never use.
            if !by_name && !allow.has_ip_rules() {
                return Err(refused());
            }
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
            // A name rule trusts DNS, but not to point at this host's own
            // loopback or link-local services: those need an address rule.
            resolved
                .filter(|a| {
                    let local = a.ip().is_loopback() || is_link_local(a.ip());
                    (by_name && !local) || allow.allows_addr(*a)
                })
                .collect()
        }
    };
    let addrs: Vec<SocketAddr> = addrs.into_iter().filter(|a| !own.is_self(*a)).collect();
    if addrs.is_empty() {
        return Err(refused());
    }
    Ok(addrs)
}

fn is_link_local(ip: std::net::IpAddr) -> bool {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
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
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let deadline = tokio::time::Instant::now() + timeout;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // The hello and small records should leave at once.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(error)) => last = error,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    let addr = addrs.first().map_or_else(String::new, ToString::to_string);
    Err(UpstreamError::Connect { addr, error: last })
}
