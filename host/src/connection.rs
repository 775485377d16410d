//! One connection's life, as a typestate: [`Accepted`] → [`Peeked`] →
//! [`Decided`] → done. Each step takes `self`, so the policy cannot be
//! skipped or asked twice, and only a `Decided` connection reaches an action.
//! The stages are described in `host/LIFECYCLE.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use rustls::ServerConfig;

use crate::action::{passthrough, reject, terminate};
use crate::config::FailMode;
use crate::decision::{Alert, Decision, Terminate, Upstream, UpstreamAddr};
use crate::peek::{self, PeekedBytes};
use crate::policy::{Connection, PolicyError};
use crate::server::Shared;
use crate::upstream::{self, Own, UpstreamError};

/// However long a policy asks for, a connect attempt ends after this.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// A socket just accepted.
pub(crate) struct Accepted {
    stream: TcpStream,
    conn: Connection,
    start: Instant,
}

/// Its ClientHello (or non-TLS first bytes) is buffered.
pub(crate) struct Peeked {
    accepted: Accepted,
    peeked: PeekedBytes,
}

/// The policy (or its fail mode) has spoken, and the upstream is resolved.
pub(crate) struct Decided {
    peeked: Peeked,
    action: Action,
    /// The policy failure that led to the fail mode, if any.
    failure: Option<PolicyError>,
}

enum Action {
    Passthrough {
        upstream: Upstream,
        addrs: Vec<std::net::SocketAddr>,
    },
    Terminate {
        terminate: Terminate,
        config: Arc<ServerConfig>,
        addrs: Vec<std::net::SocketAddr>,
    },
    Reject(Alert),
    /// The upstream's name did not resolve (or the fallback's was refused):
    /// not the policy's fault, so no fail mode; the client gets a bare close.
    Unreachable(UpstreamError),
}

impl Accepted {
    pub(crate) fn new(stream: TcpStream, conn: Connection) -> Accepted {
        Accepted {
            stream,
            conn,
            start: Instant::now(),
        }
    }

    /// Gather the ClientHello. A failure is counted, logged and closed here.
    pub(crate) async fn peek(mut self, shared: &Shared) -> Option<Peeked> {
        let limits = &shared.limits;
        match peek::peek(
            &mut self.stream,
            limits.hello_max_bytes,
            limits.hello_timeout,
        )
        .await
        {
            Ok(peeked) => Some(Peeked {
                accepted: self,
                peeked,
            }),
            Err(error) => {
                let reason = error.reason();
                shared
                    .metrics
                    .parse_failures
                    .with_label_values(&[&self.conn.listener, reason])
                    .inc();
                tracing::info!(
                    client = %self.conn.client, listener = %self.conn.listener,
                    stage = "peek", reason, "closed: {error}"
                );
                // No alert: limen has no reason to believe the peer speaks TLS
                // well enough to read one, and nothing reaches any upstream.
                reject::run(self.stream, Alert::Close, None).await;
                None
            }
        }
    }
}

impl Peeked {
    /// Ask the policy, apply the fail mode on any failure, resolve the upstream.
    pub(crate) async fn decide(self, shared: &Shared) -> Decided {
        let verdict = shared
            .policy
            .decide(&self.accepted.conn, self.peeked.hello.as_ref())
            .await;
        let planned = match verdict {
            Ok(verdict) => self.plan(shared, verdict.decision).await,
            Err(error) => Err(error),
        };
        let (action, failure) = match planned {
            Ok(action) => (action, None),
            Err(error) => {
                shared
                    .metrics
                    .policy_failures
                    .with_label_values(&[error.kind()])
                    .inc();
                tracing::warn!(
                    client = %self.accepted.conn.client, listener = %self.accepted.conn.listener,
                    kind = error.kind(), "policy failed, applying on_error: {error}"
                );
                (self.fail_mode_action(shared).await, Some(error))
            }
        };
        Decided {
            peeked: self,
            action,
            failure,
        }
    }

    /// What limen will do for this decision; a decision limen must refuse is
    /// the policy's failure.
    async fn plan(&self, shared: &Shared, decision: Decision) -> Result<Action, PolicyError> {
        let refused = |why: String| Err(PolicyError::InvalidDecision(why));
        match decision {
            Decision::Reject(alert) => Ok(Action::Reject(alert)),
            Decision::Passthrough(upstream) => Ok(match allowed(shared, &upstream.addr).await? {
                Ok(addrs) => Action::Passthrough { upstream, addrs },
                Err(error) => Action::Unreachable(error),
            }),
            Decision::Terminate(terminate) => {
                if self.peeked.hello.is_none() {
                    return refused("terminate needs a TLS ClientHello".into());
                }
                let Some(config) = shared
                    .tls
                    .certs
                    .server_config(&terminate.certificate, &terminate.alpn)
                else {
                    return refused(format!(
                        "no certificate named `{}` in [certificates]",
                        terminate.certificate
                    ));
                };
                Ok(match allowed(shared, &terminate.upstream.addr).await? {
                    Ok(addrs) => Action::Terminate {
                        terminate,
                        config,
                        addrs,
                    },
                    Err(error) => Action::Unreachable(error),
                })
            }
        }
    }

    async fn fail_mode_action(&self, shared: &Shared) -> Action {
        match &shared.on_error {
            FailMode::Reject(alert) => Action::Reject(*alert),
            FailMode::Fallback(upstream) => match resolve(shared, &upstream.addr, true).await {
                Ok(addrs) => Action::Passthrough {
                    upstream: upstream.clone(),
                    addrs,
                },
                Err(error) => Action::Unreachable(error),
            },
        }
    }
}

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
        } = accepted;
        let sni = peeked
            .hello
            .as_ref()
            .and_then(|h| h.sni())
            .map(|n| n.as_ref().to_owned());
        let record_version = peeked.hello.as_ref().map(|h| h.record_version());
        let policy = if failure.is_some() {
            "on_error"
        } else {
            "policy"
        };
        let peek_us = peeked.duration.as_micros() as u64;
        match action {
            Action::Reject(alert) => {
                reject::run(stream, alert, record_version).await;
                tracing::info!(
                    client = %conn.client, listener = %conn.listener, sni = sni.as_deref(), policy, peek_us,
                    decision = %format_args!("reject:{}", alert.name()),
                    duration_ms = start.elapsed().as_millis() as u64, "connection"
                );
            }
            Action::Unreachable(error) => {
                unreachable(shared, &conn, sni.as_deref(), policy, stream, error).await;
            }
            Action::Passthrough { upstream, addrs } => {
                let up = match connect(shared, &upstream, &addrs).await {
                    Ok(up) => up,
                    Err(error) => {
                        unreachable(shared, &conn, sni.as_deref(), policy, stream, error).await;
                        return;
                    }
                };
                let report = passthrough::run(
                    stream,
                    up,
                    &upstream,
                    &conn,
                    peeked.bytes,
                    &shared.limits,
                    force_close,
                )
                .await;
                shared.metrics.bytes_up.inc_by(report.up);
                shared.metrics.bytes_down.inc_by(report.down);
                tracing::info!(
                    client = %conn.client, listener = %conn.listener, sni = sni.as_deref(), policy, peek_us,
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
                let offered = peeked.hello.as_ref().map_or(&[][..], |h| h.alpn());
                if terminate::alpn_mismatch(offered, &terminate.alpn) {
                    shared
                        .metrics
                        .handshake_failures
                        .with_label_values(&[&conn.listener, "no_alpn"])
                        .inc();
                    tracing::info!(
                        client = %conn.client, listener = %conn.listener, sni = sni.as_deref(), policy,
                        certificate, stage = "handshake", reason = "no_alpn",
                        "closed: no ALPN protocol in common with the client"
                    );
                    reject::run(stream, Alert::NoApplicationProtocol, record_version).await;
                    return;
                }
                let tls = match terminate::handshake(
                    stream,
                    peeked.bytes,
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
                            client = %conn.client, listener = %conn.listener, sni = sni.as_deref(), policy,
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
                let version = session.protocol_version().map(|v| format!("{v:?}"));
                let forwarded = match connect(shared, &terminate.upstream, &addrs).await {
                    Ok(up) => {
                        let connector = &shared.tls.upstream.connector;
                        terminate::forward(
                            tls,
                            up,
                            &terminate,
                            &conn,
                            connector,
                            limits,
                            force_close,
                        )
                        .await
                    }
                    Err(error) => Err(error),
                };
                let report = match forwarded {
                    Ok(report) => report,
                    Err(error) => {
                        // The client's TLS session drops here: it sees the
                        // connection close, as from a backend that went away.
                        shared
                            .metrics
                            .upstream_failures
                            .with_label_values(&[error.reason()])
                            .inc();
                        tracing::info!(
                            client = %conn.client, listener = %conn.listener, sni = sni.as_deref(), policy,
                            certificate, stage = "connect", "closed: {error}"
                        );
                        return;
                    }
                };
                shared.metrics.bytes_up.inc_by(report.up);
                shared.metrics.bytes_down.inc_by(report.down);
                tracing::info!(
                    client = %conn.client, listener = %conn.listener, sni = sni.as_deref(), policy, peek_us,
                    decision = "terminate", certificate, tls = version.as_deref(), alpn = alpn.as_deref(),
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

/// Resolve an upstream a policy named. Outside the allow-list (or limen
/// itself) is the policy's failure; a name that does not resolve is not.
async fn allowed(
    shared: &Shared,
    addr: &UpstreamAddr,
) -> Result<Result<Vec<std::net::SocketAddr>, UpstreamError>, PolicyError> {
    match resolve(shared, addr, false).await {
        Err(UpstreamError::NotAllowed(addr)) => Err(PolicyError::InvalidDecision(format!(
            "upstream {addr} is not allowed (allow-list, or limen itself)"
        ))),
        other => Ok(other),
    }
}

/// Resolve and check an upstream; `trusted` for the operator's fallback.
async fn resolve(
    shared: &Shared,
    addr: &UpstreamAddr,
    trusted: bool,
) -> Result<Vec<std::net::SocketAddr>, UpstreamError> {
    let own = Own(&shared.own);
    upstream::resolve(
        addr,
        &shared.allow,
        &own,
        trusted,
        shared.limits.connect_timeout,
    )
    .await
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
    shared
        .metrics
        .upstream_failures
        .with_label_values(&[error.reason()])
        .inc();
    tracing::info!(client = %conn.client, listener = %conn.listener, sni, policy, stage = "connect", "closed: {error}");
    reject::run(stream, Alert::Close, None).await;
}

/// Drive one connection from accept to close.
pub(crate) async fn handle(
    accepted: Accepted,
    shared: Arc<Shared>,
    force_close: CancellationToken,
) {
    let run = async {
        let Some(peeked) = accepted.peek(&shared).await else {
            return;
        };
        let decided = peeked.decide(&shared).await;
        decided.execute(&shared, &force_close).await;
    };
    // When the shutdown grace period is over, every stage ends, not only the copy.
    tokio::select! {
        () = run => {}
        () = force_close.cancelled() => {}
    }
}
