//! The last stage of a connection: carry out the decided action, count what
//! happened, and tell the trail how it ended.

use std::sync::Arc;
use std::time::Instant;

use rustls::ServerConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::trail::Trail;
use super::{Action, Context, Decided};
use crate::decision::{Alert, ProxyVersion, Terminate, Upstream, UpstreamAddr};
use crate::hello::HelloSummary;
use crate::observe::access;
use crate::observe::metrics::ListenerMetrics;
use crate::outcome::{End, Stage};
use crate::path::action::pipe::Report;
use crate::path::action::proxy_header::{self, TlvValues};
use crate::path::action::{passthrough, reject, terminate};
use crate::policy::Connection;
use crate::state::live::Generation;
use crate::upstream::pool::Lease;
use crate::upstream::{self, Connected, Dest, UpstreamError};

/// However long a policy asks for, a connect attempt ends after this.
const MAX_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Bytes each way and how the connection ended.
type Ended = ((u64, u64), End);

impl Decided {
    /// Carry out the action; count it and note how it ended.
    pub(super) async fn execute(self, cx: &Context, trail: &mut Trail) {
        let Decided {
            stream,
            mut active,
            bytes,
            action,
            held,
        } = self;
        let (moved, end) = match action {
            Action::Reject(alert) => {
                active.enter(Stage::Reject);
                trail.acting(access::Action::Reject(alert), None);
                let record_version = trail.hello().map(|h| h.record_version());
                // Noted before the linger, which a shutdown may cut.
                trail.ended((0, 0), End::Rejected);
                reject::run(stream, alert, record_version).await;
                ((0, 0), End::Rejected)
            }
            Action::Challenge { challenge, hello } => {
                active.enter(Stage::Terminate);
                let answer =
                    super::challenge::answer(cx, trail, stream, bytes, (challenge, &hello));
                Box::pin(answer).await
            }
            Action::Unreachable(error) => {
                trail.acting(access::Action::Unreachable, None);
                unreachable(cx, trail, stream, &error).await
            }
            Action::Passthrough { upstream, dest } => {
                active.enter(Stage::Passthrough);
                passthrough(cx, trail, stream, &upstream, &dest, bytes).await
            }
            Action::Terminate {
                terminate,
                config,
                hello,
                dest,
            } => {
                active.enter(Stage::Terminate);
                let certificate = terminate.certificate.clone();
                let upstream = Some(terminate.upstream.addr.clone());
                trail.acting(access::Action::Terminate(certificate), upstream);
                let listener = active.metrics();
                let planned = (&*terminate, config, &dest);
                // Boxed: a TLS session's state is large, and a future is as
                // large as its largest stage, which every passthrough
                // connection would otherwise carry from accept.
                Box::pin(terminated(
                    cx, trail, listener, stream, bytes, &hello, planned,
                ))
                .await
            }
        };
        trail.ended(moved, end);
        drop(held);
    }
}

async fn passthrough(
    cx: &Context,
    trail: &mut Trail,
    stream: TcpStream,
    upstream: &Upstream,
    dest: &Dest,
    bytes: Vec<u8>,
) -> Ended {
    let generation = &cx.generation;
    trail.acting(access::Action::Passthrough, Some(upstream.addr.clone()));
    // The lease, if a pool's, counts the connection on its member until the end.
    let Connected { stream: up, lease } = match connect(cx, trail, upstream, dest).await {
        Ok(up) => up,
        Err(error) => {
            trail.acting(access::Action::Unreachable, Some(upstream.addr.clone()));
            return unreachable(cx, trail, stream, &error).await;
        }
    };
    let hello = trail.hello();
    let values = TlvValues {
        authority: hello.and_then(|h| h.sni()).map(|n| n.as_ref()),
        alpn: hello.and_then(|h| h.alpn().first()).map(Vec::as_slice),
        ja4: hello
            .filter(|_| wants_ja4(upstream))
            .map(|h| h.fingerprints().ja4.as_str()),
    };
    let header = proxy_header(upstream, &cx.conn, values);
    trail.hello_read(generation);
    let limits = &generation.limits;
    let report = passthrough::run(stream, up, header, bytes, limits, &cx.force_close).await;
    drop(lease);
    counted(generation, &report)
}

async fn terminated(
    cx: &Context,
    trail: &mut Trail,
    listener: &ListenerMetrics,
    stream: TcpStream,
    bytes: Vec<u8>,
    hello: &HelloSummary,
    (terminate, config, dest): (&Terminate, Arc<ServerConfig>, &Dest),
) -> Ended {
    let (generation, conn) = (&*cx.generation, &cx.conn);
    let limits = &generation.limits;
    let certificate = terminate.certificate.as_str();
    let handshake = terminate::handshake(stream, bytes, hello, config, limits.handshake_timeout);
    let tls = match handshake.await {
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
    let values = TlvValues {
        authority: hello.sni().map(|n| n.as_ref()),
        alpn: session.alpn_protocol(),
        ja4: Some(hello)
            .filter(|_| wants_ja4(&terminate.upstream))
            .map(|h| h.fingerprints().ja4.as_str()),
    };
    let header = proxy_header(&terminate.upstream, conn, values);
    tracing::debug!(
        target: "tls_sni", listener = &*conn.listener, client = %conn.client, certificate,
        tls = session.protocol_version().and_then(|v| v.as_str()),
        alpn = session.alpn_protocol().map(String::from_utf8_lossy).as_deref(),
        "tls.terminated"
    );
    let Connected { stream: up, lease } = match connect(cx, trail, &terminate.upstream, dest).await
    {
        Ok(up) => up,
        // The client's TLS session drops here: it sees the connection
        // close, as from a backend that went away.
        Err(error) => return failed(generation, conn, &error),
    };
    let connector = &generation.tls.upstream.connector;
    let host = tls_host(&terminate.upstream.addr, lease.as_ref(), &up);
    let forward = terminate::forward(
        tls,
        (up, host),
        terminate,
        header,
        connector,
        limits,
        &cx.force_close,
    );
    let ended = match forward.await {
        Ok(report) => counted(generation, &report),
        Err(error) => failed(generation, conn, &error),
    };
    drop(lease);
    ended
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

/// Connect within the decision's timeout (capped), or limen's default (per
/// member tried, for a pool); the time it took goes to the histogram and
/// the access log.
async fn connect(
    cx: &Context,
    trail: &mut Trail,
    upstream: &Upstream,
    dest: &Dest,
) -> Result<Connected, UpstreamError> {
    let generation = &cx.generation;
    let timeout = upstream
        .connect_timeout
        .unwrap_or(generation.limits.connect_timeout)
        .min(MAX_CONNECT_TIMEOUT);
    let key = match dest {
        Dest::Pool(pool) => {
            let sni = trail.hello().and_then(|h| h.sni()).map(|n| n.as_ref());
            pool.key(cx.conn.client.ip(), sni)
        }
        Dest::Addrs(_) => 0,
    };
    let started = Instant::now();
    let stream = upstream::connect_to(dest, key, timeout).await?;
    let took = started.elapsed();
    generation.metrics.connected(took);
    trail.connected(took);
    Ok(stream)
}

/// No upstream connection: counted, logged, and the client gets a bare close
/// (limen is not the TLS endpoint, so it has no alert to speak for the upstream).
async fn unreachable(
    cx: &Context,
    trail: &mut Trail,
    stream: TcpStream,
    error: &UpstreamError,
) -> Ended {
    let (moved, end) = failed(&cx.generation, &cx.conn, error);
    // Noted before the linger, which a shutdown may cut.
    trail.ended(moved, end);
    reject::run(stream, Alert::Close, None).await;
    (moved, end)
}

/// Count and log an upstream that could not be reached (or verified).
fn failed(generation: &Generation, conn: &Connection, error: &UpstreamError) -> Ended {
    let reason = error.reason();
    generation.metrics.upstream_failed(reason);
    tracing::info!(
        target: "tls_sni", listener = &*conn.listener, client = %conn.client,
        reason = reason.as_str(), %error, "upstream.connect_failed"
    );
    ((0, 0), End::ConnectFailed)
}

fn counted(generation: &Generation, report: &Report) -> Ended {
    generation.metrics.bytes_up.inc_by(report.up);
    generation.metrics.bytes_down.inc_by(report.down);
    ((report.up, report.down), report.end)
}

/// Whether `upstream`'s PROXY header carries the JA4 TLV: only then is the
/// fingerprint computed for this connection (if nothing else asked for it).
fn wants_ja4(upstream: &Upstream) -> bool {
    upstream.proxy_protocol == Some(ProxyVersion::V2) && upstream.proxy_tlvs.ja4
}
