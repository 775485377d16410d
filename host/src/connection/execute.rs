//! The last stage of a connection: carry out the decided action, count what
//! happened and leave the connection's access log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::report::Trail;
use super::{Accepted, Action, Decided, MAX_CONNECT_TIMEOUT, Peeked};
use crate::access;
use crate::action::pipe::Report;
use crate::action::proxy_header::{self, TlvValues};
use crate::action::{passthrough, reject, terminate};
use crate::decision::{Alert, Terminate, Upstream};
use crate::metrics::Stage;
use crate::peek::PeekedBytes;
use crate::policy::Connection;
use crate::server::Shared;
use crate::upstream::{self, UpstreamError};

/// Bytes each way and how the connection ended (an access log `end`).
type Ended = ((u64, u64), &'static str);

impl Decided {
    /// Carry out the action; count it and log it.
    pub(crate) async fn execute(self, shared: &Shared, force_close: &CancellationToken) {
        let Decided {
            peeked: Peeked { accepted, peeked },
            action,
        } = self;
        let Accepted {
            stream,
            conn,
            policy: live,
            mut active,
            mut trail,
        } = accepted;
        // Released before the action: a connection that lasts for days must
        // not keep a swapped-out policy (and its instances) alive.
        trail.policy_version = Some(live.version().id.clone());
        drop(live);
        let PeekedBytes { bytes, hello, .. } = peeked;
        trail.hello = hello;
        let (moved, end) = match action {
            Action::Reject(alert) => {
                active.enter(Stage::Reject);
                trail.action = access::Action::Reject(alert);
                let record_version = trail.hello.as_ref().map(|h| h.record_version());
                reject::run(stream, alert, record_version).await;
                ((0, 0), "rejected")
            }
            Action::Unreachable(error) => {
                trail.action = access::Action::Unreachable;
                unreachable(shared, &conn, stream, &error).await
            }
            Action::Passthrough { upstream, addrs } => {
                active.enter(Stage::Passthrough);
                let ended = passthrough(
                    shared,
                    &conn,
                    &mut trail,
                    stream,
                    &upstream,
                    &addrs,
                    bytes,
                    force_close,
                )
                .await;
                trail.upstream = Some(upstream.addr);
                ended
            }
            Action::Terminate {
                terminate,
                config,
                addrs,
            } => {
                active.enter(Stage::Terminate);
                let ended = terminated(
                    shared,
                    &conn,
                    &mut trail,
                    stream,
                    bytes,
                    (&terminate, config, &addrs),
                    force_close,
                )
                .await;
                trail.action = access::Action::Terminate(terminate.certificate);
                trail.upstream = Some(terminate.upstream.addr);
                ended
            }
        };
        trail.finish(shared, &conn, moved, end);
    }
}

#[allow(clippy::too_many_arguments)]
async fn passthrough(
    shared: &Shared,
    conn: &Connection,
    trail: &mut Trail,
    stream: TcpStream,
    upstream: &Upstream,
    addrs: &[SocketAddr],
    bytes: Vec<u8>,
    force_close: &CancellationToken,
) -> Ended {
    trail.action = access::Action::Passthrough;
    let up = match connect(shared, trail, upstream, addrs).await {
        Ok(up) => up,
        Err(error) => {
            trail.action = access::Action::Unreachable;
            return unreachable(shared, conn, stream, &error).await;
        }
    };
    let hello = trail.hello.as_ref();
    let values = TlvValues {
        authority: hello.and_then(|h| h.sni()).map(|n| n.as_ref()),
        alpn: hello.and_then(|h| h.alpn().first()).map(Vec::as_slice),
        ja4: hello.map(|h| h.fingerprints().ja4.as_str()),
    };
    let header = proxy_header(upstream, conn, values);
    let report = passthrough::run(stream, up, header, bytes, &shared.limits, force_close).await;
    counted(shared, &report)
}

async fn terminated(
    shared: &Shared,
    conn: &Connection,
    trail: &mut Trail,
    stream: TcpStream,
    bytes: Vec<u8>,
    (terminate, config, addrs): (&Terminate, Arc<ServerConfig>, &[SocketAddr]),
    force_close: &CancellationToken,
) -> Ended {
    let limits = &shared.limits;
    let certificate = terminate.certificate.as_str();
    // `plan` only terminates connections that sent a ClientHello.
    let Some(hello) = trail.hello.as_ref() else {
        return ((0, 0), "io_error");
    };
    let handshake = terminate::handshake(stream, bytes, hello, config, limits.handshake_timeout);
    let tls = match handshake.await {
        Ok(tls) => tls,
        Err(error) => {
            let reason = error.reason();
            shared
                .metrics
                .handshake_failures
                .with_label_values(&[&conn.listener, reason])
                .inc();
            tracing::info!(
                target: "tls_sni", listener = &*conn.listener, client = %conn.client,
                certificate, reason, %error, "tls.handshake_failed"
            );
            return ((0, 0), "handshake_failed");
        }
    };
    let session = tls.get_ref().1;
    let values = TlvValues {
        authority: hello.sni().map(|n| n.as_ref()),
        alpn: session.alpn_protocol(),
        ja4: Some(hello.fingerprints().ja4.as_str()),
    };
    let header = proxy_header(&terminate.upstream, conn, values);
    tracing::debug!(
        target: "tls_sni", listener = &*conn.listener, client = %conn.client, certificate,
        tls = session.protocol_version().and_then(|v| v.as_str()),
        alpn = session.alpn_protocol().map(String::from_utf8_lossy).as_deref(),
        "tls.terminated"
    );
    let up = match connect(shared, trail, &terminate.upstream, addrs).await {
        Ok(up) => up,
        // The client's TLS session drops here: it sees the connection
        // close, as from a backend that went away.
        Err(error) => return failed(shared, conn, &error),
    };
    let connector = &shared.tls.upstream.connector;
    match terminate::forward(tls, up, terminate, header, connector, limits, force_close).await {
        Ok(report) => counted(shared, &report),
        Err(error) => failed(shared, conn, &error),
    }
}

/// The PROXY header the decision asked for (empty if none), with the TLVs
/// it asked for.
fn proxy_header(upstream: &Upstream, conn: &Connection, values: TlvValues<'_>) -> Vec<u8> {
    upstream.proxy_protocol.map_or_else(Vec::new, |version| {
        proxy_header::build(
            version,
            conn.client,
            conn.local,
            upstream.proxy_tlvs,
            values,
        )
    })
}

/// Connect within the decision's timeout (capped), or limen's default;
/// the time it took goes to the histogram and the access log.
async fn connect(
    shared: &Shared,
    trail: &mut Trail,
    upstream: &Upstream,
    addrs: &[SocketAddr],
) -> Result<TcpStream, UpstreamError> {
    let timeout = upstream
        .connect_timeout
        .unwrap_or(shared.limits.connect_timeout)
        .min(MAX_CONNECT_TIMEOUT);
    let started = Instant::now();
    let stream = upstream::connect(addrs, timeout).await?;
    let took = started.elapsed();
    shared.metrics.connected(took);
    trail.connect = Some(took);
    Ok(stream)
}

/// No upstream connection: counted, logged, and the client gets a bare close
/// (limen is not the TLS endpoint, so it has no alert to speak for the upstream).
async fn unreachable(
    shared: &Shared,
    conn: &Connection,
    stream: TcpStream,
    error: &UpstreamError,
) -> Ended {
    let ended = failed(shared, conn, error);
    reject::run(stream, Alert::Close, None).await;
    ended
}

/// Count and log an upstream that could not be reached (or verified).
fn failed(shared: &Shared, conn: &Connection, error: &UpstreamError) -> Ended {
    let reason = error.reason();
    shared.metrics.upstream_failed(reason);
    tracing::info!(
        target: "tls_sni", listener = &*conn.listener, client = %conn.client, reason, %error,
        "upstream.connect_failed"
    );
    ((0, 0), "connect_failed")
}

fn counted(shared: &Shared, report: &Report) -> Ended {
    shared.metrics.bytes_up.inc_by(report.up);
    shared.metrics.bytes_down.inc_by(report.down);
    ((report.up, report.down), report.end.name())
}
