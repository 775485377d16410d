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
        }
    }
}

/// The addresses limen may connect to for `addr`. `trusted` skips the
/// allow-list, for upstreams the operator wrote (the fail-mode fallback).
pub(crate) async fn resolve(
    addr: &UpstreamAddr,
    allow: &AllowList,
    trusted: bool,
) -> Result<Vec<SocketAddr>, UpstreamError> {
    match addr {
        UpstreamAddr::Ip(ip) if trusted || allow.allows_addr(*ip) => Ok(vec![*ip]),
        UpstreamAddr::Ip(ip) => Err(UpstreamError::NotAllowed(ip.to_string())),
        UpstreamAddr::Name(name, port) => {
            let by_name = trusted || allow.allows_name(name.as_ref(), *port);
            // A policy must not be able to make limen query DNS for names it
            // could never use.
            if !by_name && !allow.has_ip_rules() {
                return Err(UpstreamError::NotAllowed(addr.to_string()));
            }
            let resolved = tokio::net::lookup_host((name.as_ref(), *port))
                .await
                .map_err(|error| UpstreamError::Resolve {
                    addr: addr.to_string(),
                    error,
                })?;
            let addrs: Vec<SocketAddr> = resolved
                .filter(|a| by_name || allow.allows_addr(*a))
                .collect();
            if addrs.is_empty() {
                return Err(UpstreamError::NotAllowed(addr.to_string()));
            }
            Ok(addrs)
        }
    }
}

/// Connect to the first address that answers, each try bounded by `timeout`.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, UpstreamError> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
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
