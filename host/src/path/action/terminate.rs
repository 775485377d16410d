//! Terminate: limen finishes the client's handshake itself, with the
//! certificate the policy named, then forwards the plaintext to the upstream
//! or re-encrypts it.
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
use tokio_util::sync::CancellationToken;

use super::pipe::{self, Report};
use super::reject;
use super::replay::Replay;
use crate::decision::{Alert, Terminate};
use crate::hello::HelloSummary;
use crate::outcome::HandshakeFailure;
use crate::state::config::Limits;
use crate::upstream::{UpstreamError, within};

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
fn alpn_mismatch(offered: &[Vec<u8>], allowed: &[Vec<u8>]) -> bool {
    !offered.is_empty() && !allowed.is_empty() && !allowed.iter().any(|p| offered.contains(p))
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

/// Connected to the upstream: send the PROXY header, start TLS if the
/// decision re-encrypts (offering the client's negotiated protocol), then
/// pipe until both directions are done.
pub(crate) async fn forward(
    client: ClientTls,
    (mut upstream, host): (TcpStream, ServerName<'static>),
    decision: &Terminate,
    header: Vec<u8>,
    connector: &TlsConnector,
    limits: &Limits,
    force_close: &CancellationToken,
) -> Result<Report, UpstreamError> {
    let addr = || decision.upstream.addr.to_string();
    let timeout = limits.handshake_timeout;
    if !header.is_empty() {
        within(
            timeout,
            "PROXY header not taken",
            upstream.write_all(&header),
        )
        .await
        .map_err(|error| UpstreamError::Connect {
            addr: addr(),
            error,
        })?;
    }
    let (idle, buffer) = (limits.idle_timeout, limits.copy_buffer);
    let Some(reencrypt) = &decision.reencrypt else {
        return Ok(pipe::run(client, upstream, Vec::new(), 0, idle, buffer, force_close).await);
    };
    let name = reencrypt.server_name.clone().unwrap_or(host);
    let alpn = client.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let connect = connector
        .with_alpn(alpn.into_iter().collect())
        .connect(name, upstream);
    let upstream = within(timeout, "upstream TLS handshake timed out", connect)
        .await
        .map_err(|error| UpstreamError::Tls {
            addr: addr(),
            error,
        })?;
    Ok(pipe::run(client, upstream, Vec::new(), 0, idle, buffer, force_close).await)
}
