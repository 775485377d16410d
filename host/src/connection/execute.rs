//! The last stage of a connection: carry out the decided action, count what
//! happened and write the connection's log line.

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{Accepted, Action, Decided, MAX_CONNECT_TIMEOUT, Peeked};
use crate::action::pipe::Report;
use crate::action::{passthrough, reject, terminate};
use crate::decision::{Alert, Upstream};
use crate::peek::PeekedBytes;
use crate::policy::Connection;
use crate::server::Shared;
use crate::upstream::{self, UpstreamError};

impl Decided {
    /// Carry out the action and write the connection's log line.
    pub(crate) async fn execute(self, shared: &Shared, force_close: &CancellationToken) {
        let Decided {
            peeked: Peeked { accepted, peeked },
            action,
            failure,
        } = self;
        let Accepted {
            stream,
            conn,
            start,
            policy: live,
        } = accepted;
        // Released before the action: a connection that lasts for days must
        // not keep a swapped-out policy (and its instances) alive.
        let policy_version = live.version().id.clone();
        drop(live);
        let PeekedBytes {
            bytes,
            hello,
            duration,
        } = peeked;
        let sni = hello.as_ref().and_then(|h| h.sni()).map(|n| n.as_ref());
        let record_version = hello.as_ref().map(|h| h.record_version());
        let policy = if failure.is_some() {
            "on_error"
        } else {
            "policy"
        };
        let peek_us = duration.as_micros() as u64;
        match action {
            Action::Reject(alert) => {
                reject::run(stream, alert, record_version).await;
                tracing::info!(
                    client = %conn.client, listener = %conn.listener, sni, policy, %policy_version, peek_us,
                    decision = %format_args!("reject:{}", alert.name()),
                    duration_ms = start.elapsed().as_millis() as u64, "connection"
                );
            }
            Action::Unreachable(error) => {
                unreachable(shared, &conn, sni, policy, stream, error).await;
            }
            Action::Passthrough { upstream, addrs } => {
                let up = match connect(shared, &upstream, &addrs).await {
                    Ok(up) => up,
                    Err(error) => {
                        unreachable(shared, &conn, sni, policy, stream, error).await;
                        return;
                    }
                };
                let report = passthrough::run(
                    stream,
                    up,
                    &upstream,
                    &conn,
                    bytes,
                    &shared.limits,
                    force_close,
                )
                .await;
                count_bytes(shared, &report);
                tracing::info!(
                    client = %conn.client, listener = %conn.listener, sni, policy, %policy_version, peek_us,
                    decision = "passthrough", upstream = %upstream.addr, bytes_up = report.up,
                    bytes_down = report.down, end = report.end.name(),
                    duration_ms = start.elapsed().as_millis() as u64, "connection"
                );
            }
            Action::Terminate {
                terminate,
                config,
                addrs,
            } => {
                let limits = &shared.limits;
                let certificate = terminate.certificate.as_str();
                // `plan` only terminates connections that sent a ClientHello.
                let Some(hello) = hello.as_ref() else {
                    return;
                };
                let tls = match terminate::handshake(
                    stream,
                    bytes,
                    hello,
                    config,
                    limits.handshake_timeout,
                )
                .await
                {
                    Ok(tls) => tls,
                    Err(error) => {
                        shared
                            .metrics
                            .handshake_failures
                            .with_label_values(&[&conn.listener, error.reason()])
                            .inc();
                        tracing::info!(
                            client = %conn.client, listener = %conn.listener, sni, policy,
                            certificate, stage = "handshake", reason = error.reason(),
                            "closed: TLS handshake failed: {error}"
                        );
                        return;
                    }
                };
                let session = tls.get_ref().1;
                let alpn = session
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
                let tls_version = session.protocol_version().and_then(|v| v.as_str());
                let forwarded = async {
                    let up = connect(shared, &terminate.upstream, &addrs).await?;
                    let connector = &shared.tls.upstream.connector;
                    terminate::forward(tls, up, &terminate, &conn, connector, limits, force_close)
                        .await
                }
                .await;
                let report = match forwarded {
                    Ok(report) => report,
                    Err(error) => {
                        // The client's TLS session drops here: it sees the
                        // connection close, as from a backend that went away.
                        upstream_failed(shared, &conn, sni, policy, Some(certificate), &error);
                        return;
                    }
                };
                count_bytes(shared, &report);
                tracing::info!(
                    client = %conn.client, listener = %conn.listener, sni, policy, %policy_version, peek_us,
                    decision = "terminate", certificate, tls = tls_version, alpn = alpn.as_deref(),
                    upstream = %terminate.upstream.addr, reencrypt = terminate.reencrypt.is_some(),
                    bytes_up = report.up, bytes_down = report.down, end = report.end.name(),
                    duration_ms = start.elapsed().as_millis() as u64, "connection"
                );
            }
        }
    }
}

/// Connect within the decision's timeout (capped), or limen's default.
async fn connect(
    shared: &Shared,
    upstream: &Upstream,
    addrs: &[std::net::SocketAddr],
) -> Result<TcpStream, UpstreamError> {
    let timeout = upstream
        .connect_timeout
        .unwrap_or(shared.limits.connect_timeout)
        .min(MAX_CONNECT_TIMEOUT);
    upstream::connect(addrs, timeout).await
}

/// No upstream connection: counted, logged, and the client gets a bare close
/// (limen is not the TLS endpoint, so it has no alert to speak for the upstream).
async fn unreachable(
    shared: &Shared,
    conn: &Connection,
    sni: Option<&str>,
    policy: &str,
    stream: TcpStream,
    error: UpstreamError,
) {
    upstream_failed(shared, conn, sni, policy, None, &error);
    reject::run(stream, Alert::Close, None).await;
}

/// Count and log an upstream that could not be reached (or verified).
fn upstream_failed(
    shared: &Shared,
    conn: &Connection,
    sni: Option<&str>,
    policy: &str,
    certificate: Option<&str>,
    error: &UpstreamError,
) {
    shared
        .metrics
        .upstream_failures
        .with_label_values(&[error.reason()])
        .inc();
    tracing::info!(
        client = %conn.client, listener = %conn.listener, sni, policy, certificate,
        stage = "connect", "closed: {error}"
    );
}

fn count_bytes(shared: &Shared, report: &Report) {
    shared.metrics.bytes_up.inc_by(report.up);
    shared.metrics.bytes_down.inc_by(report.down);
}
