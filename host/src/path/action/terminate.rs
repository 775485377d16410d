//! Terminate: limen finishes the client's handshake itself, with the
//! certificate the policy named, then connects the upstream and forwards
//! the plaintext to it or re-encrypts it.
//!
//! rustls reads the peeked ClientHello first (through [`Replay`]), so the
//! hello is neither read twice nor lost. The upstream is contacted only after
//! the client's handshake succeeded: a failed handshake reaches no upstream.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::connect::{self, counted, failed};
use super::first::{self, First};
use super::pipe::{self, Report};
use super::replay::Replay;
use super::{Ended, Notes, Scope, proxy_header, reject};
use crate::decision::{Alert, Terminate, UpstreamAddr};
use crate::hello::{Alpn, HelloSummary};
use crate::observe::access;
use crate::observe::metrics::ListenerMetrics;
use crate::outcome::{End, HandshakeFailure, RetryReason};
use crate::state::config::Limits;
use crate::upstream::pool::{Lease, Tries};
use crate::upstream::{Connected, Dest, UpstreamError, within};

/// Carry a terminate out: the handshake (a failure is counted on
/// `listener` and reaches no upstream), then the upstream at `dest`, then
/// the copy until both directions are done.
pub(crate) async fn run(
    cx: &impl Scope,
    notes: &mut impl Notes,
    listener: &ListenerMetrics,
    client: TcpStream,
    peeked: Vec<u8>,
    (terminate, config, hello, dest): (&Terminate, Arc<ServerConfig>, &HelloSummary, &Dest),
) -> Ended {
    let acting = access::ActionTaken::Terminate(terminate.certificate.clone());
    notes.acting(acting, Some(terminate.upstream.addr.clone()));
    let (generation, conn) = (cx.generation(), cx.conn());
    let limits = &generation.limits;
    let certificate = terminate.certificate.as_str();
    let tls = match handshake(client, peeked, hello, config, limits.handshake_timeout).await {
        Ok(tls) => tls,
        Err(error) => {
            let reason = error.reason();
            listener.handshake_failed(reason);
            tracing::info!(
                target: "tls_sni", listener = &*conn.listener, client = %conn.client,
                certificate, reason = reason.as_str(), %error, "tls.handshake_failed"
            );
            return ((0, 0), End::HandshakeFailed);
        }
    };
    let session = tls.get_ref().1;
    let alpn = session.alpn_protocol();
    let header = proxy_header::for_upstream(&terminate.upstream, conn, Some(hello), alpn);
    tracing::debug!(
        target: "tls_sni", listener = &*conn.listener, client = %conn.client, certificate,
        tls = session.protocol_version().and_then(|v| v.as_str()),
        alpn = session.alpn_protocol().map(String::from_utf8_lossy).as_deref(),
        "tls.terminated"
    );
    let (connector, force_close) = (&generation.tls.upstream.connector, cx.force_close());
    let (idle, buffer) = (limits.idle_timeout, limits.copy_buffer);
    let mut client = tls;
    let mut tries = Tries::default();
    // What the client sent that no member has answered yet: replayed to the
    // next member if this one fails before its first byte.
    let mut sent = Vec::new();
    loop {
        let connected = connect::connect(cx, notes, (&terminate.upstream, dest), &mut tries).await;
        // The lease, if a pool's, counts the connection on its member
        // until the end (a `continue` ends it).
        let Connected { stream: up, lease } = match connected {
            Ok(up) => up,
            // The client's TLS session drops here: it sees the connection
            // close, as from a backend that went away.
            Err(error) => return failed(generation, conn, &error),
        };
        let retry = match (dest, &lease) {
            (Dest::Pool(pool), Some(lease)) if pool.may_retry(&tries) => Some((pool, lease)),
            _ => None,
        };
        let host = tls_host(&terminate.upstream.addr, lease.as_ref(), &up);
        let preamble = [&header[..], &sent[..]];
        let alpn = client.get_ref().1.alpn_protocol();
        let opened = open((up, host), terminate, preamble, (connector, alpn), limits).await;
        let report = match (opened, retry) {
            (Err((_, reason)), Some((pool, lease))) => {
                pool.failed_before_answer(lease, reason, &mut tries);
                continue;
            }
            (Err((error, _)), None) => return failed(generation, conn, &error),
            (Ok(Opened::Tls(up)), _) => pipe::run(client, up, 0, idle, buffer, force_close).await,
            (Ok(Opened::Plain(mut up)), Some((pool, lease))) => {
                let kept = (&mut sent, pool.replays_requests());
                let wait = first::terminated((&mut client, &mut up), kept, idle, force_close);
                match wait.await {
                    First::Failed(reason) => {
                        pool.failed_before_answer(lease, reason, &mut tries);
                        continue;
                    }
                    First::Ended(end) => Report {
                        up: sent.len() as u64,
                        down: 0,
                        end,
                    },
                    First::Committed => {
                        let replayed = std::mem::take(&mut sent).len();
                        pipe::run(client, up, replayed, idle, buffer, force_close).await
                    }
                }
            }
            (Ok(Opened::Plain(up)), None) => {
                pipe::run(client, up, sent.len(), idle, buffer, force_close).await
            }
        };
        drop(lease);
        return counted(generation, &report);
    }
}

/// The name a re-encrypted upstream is verified against when the decision
/// gives none: the host the policy named, or for a pool the member's host
/// as the operator wrote it.
fn tls_host(addr: &UpstreamAddr, lease: Option<&Lease>, up: &TcpStream) -> ServerName<'static> {
    match (lease, addr) {
        (Some(lease), _) => lease.member().host.clone(),
        (None, UpstreamAddr::Name(name, _)) => ServerName::DnsName(name.clone()),
        (None, UpstreamAddr::Ip(ip)) => ServerName::IpAddress(ip.ip().into()),
        // A pool always comes with a lease; the peer's address is the
        // honest answer if that ever changes.
        (None, UpstreamAddr::Pool(_)) => match up.peer_addr() {
            Ok(peer) => ServerName::IpAddress(peer.ip().into()),
            Err(_) => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
        },
    }
}

/// The client's side of a terminated connection.
pub(crate) type ClientTls = tokio_rustls::server::TlsStream<Replay<TcpStream>>;

/// Why the client's handshake did not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("handshake timed out")]
    Timeout,
    #[error("no ALPN protocol in common with the client")]
    NoAlpn,
    #[error("{0}")]
    Tls(rustls::Error),
    #[error("{0}")]
    Io(io::Error),
}

impl HandshakeError {
    /// Its metric label.
    pub(crate) fn reason(&self) -> HandshakeFailure {
        use HandshakeFailure as F;
        use rustls::Error as E;
        match self {
            HandshakeError::Timeout => F::Timeout,
            HandshakeError::NoAlpn => F::NoAlpn,
            HandshakeError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => F::ClientClosed,
            HandshakeError::Io(_) => F::Io,
            HandshakeError::Tls(e) => match e {
                E::AlertReceived(_) => F::ClientAlert,
                E::PeerIncompatible(_) => F::Incompatible,
                E::NoApplicationProtocol => F::NoAlpn,
                E::InvalidMessage(_) | E::InappropriateHandshakeMessage { .. } => F::Malformed,
                E::PeerMisbehaved(_) => F::Misbehaved,
                _ => F::Other,
            },
        }
    }
}

/// RFC 7301: when the client offers ALPN and limen may select none of its
/// protocols, the answer is a `no_application_protocol` alert. limen checks
/// this on the peeked hello and sends the alert itself, because rustls
/// 0.23's TLS 1.3 server closes without it in this case.
fn alpn_mismatch(offered: Alpn<'_>, allowed: &[Vec<u8>]) -> bool {
    offered.len() > 0
        && !allowed.is_empty()
        && !allowed
            .iter()
            .any(|p| offered.clone().any(|o| o == p.as_slice()))
}

/// Finish the handshake with `config`, feeding rustls the `peeked` bytes
/// (whose parsed form is `hello`) first. On failure the client has its alert
/// (rustls', or limen's for an ALPN mismatch) and the socket is closed gently
/// so that the alert arrives.
pub(crate) async fn handshake(
    client: TcpStream,
    peeked: Vec<u8>,
    hello: &HelloSummary,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<ClientTls, HandshakeError> {
    if alpn_mismatch(hello.alpn(), &config.alpn_protocols) {
        let version = Some(hello.record_version());
        reject::run(client, Alert::NoApplicationProtocol, version).await;
        return Err(HandshakeError::NoAlpn);
    }
    let _ = client.set_nodelay(true);
    let accept = TlsAcceptor::from(config)
        .accept(Replay::new(peeked, client))
        .into_fallible();
    match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err((error, replay))) => {
            reject::close_gently(replay.into_inner()).await;
            Err(classify(error))
        }
        Err(_) => Err(HandshakeError::Timeout),
    }
}

/// tokio-rustls wraps rustls errors in `io::Error`; unwrap them for a reason.
fn classify(error: io::Error) -> HandshakeError {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => HandshakeError::Tls(tls.clone()),
        None => HandshakeError::Io(error),
    }
}

/// A member's connection, ready for the copy.
enum Opened {
    Plain(TcpStream),
    /// Boxed: every terminated connection's task would otherwise carry
    /// room for rustls' client state.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connected to the upstream: send `preamble` (the PROXY header, then what
/// the client sent that an earlier member did not answer) and start TLS if
/// the decision re-encrypts, offering the client's negotiated protocol.
/// Every failure here comes before the member's first byte (the reason a
/// pool retries it under).
async fn open(
    (mut upstream, host): (TcpStream, ServerName<'static>),
    decision: &Terminate,
    preamble: [&[u8]; 2],
    (connector, alpn): (&TlsConnector, Option<&[u8]>),
    limits: &Limits,
) -> Result<Opened, (UpstreamError, RetryReason)> {
    let addr = || decision.upstream.addr.to_string();
    let timeout = limits.handshake_timeout;
    for bytes in preamble.into_iter().filter(|b| !b.is_empty()) {
        let write = within(timeout, "upstream took no bytes", upstream.write_all(bytes));
        if let Err(error) = write.await {
            let reason = first::broken(&error).unwrap_or(RetryReason::Timeout);
            return Err((
                UpstreamError::Connect {
                    addr: addr(),
                    error,
                },
                reason,
            ));
        }
    }
    let Some(reencrypt) = &decision.reencrypt else {
        return Ok(Opened::Plain(upstream));
    };
    let name = reencrypt.server_name.clone().unwrap_or(host);
    let connect = connector
        .with_alpn(alpn.into_iter().map(<[u8]>::to_vec).collect())
        .connect(name, upstream);
    match within(timeout, "upstream TLS handshake timed out", connect).await {
        Ok(tls) => Ok(Opened::Tls(Box::new(tls))),
        Err(error) => {
            let reason = first::broken(&error).unwrap_or(RetryReason::Tls);
            Err((
                UpstreamError::Tls {
                    addr: addr(),
                    error,
                },
                reason,
            ))
        }
    }
}
