//! One connection's life, as a typestate: [`Accepted`] → [`Peeked`] →
//! [`Decided`] → done. Each step takes `self`, so the policy cannot be
//! skipped or asked twice, and only a `Decided` connection reaches an action.
//! The stages are described in `host/LIFECYCLE.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::action::{passthrough, proxy_header, reject};
use crate::config::FailMode;
use crate::decision::{Alert, Decision, Upstream, UpstreamAddr};
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
        let mut failure = None;
        let action = match verdict.map(|v| v.decision) {
            Ok(Decision::Reject(alert)) => Action::Reject(alert),
            Ok(Decision::Passthrough(upstream)) => {
                match resolve(shared, &upstream.addr, false).await {
                    Ok(addrs) => Action::Passthrough { upstream, addrs },
                    Err(UpstreamError::NotAllowed(addr)) => {
                        let why =
                            format!("upstream {addr} is not allowed (allow-list, or limen itself)");
                        failure = Some(PolicyError::InvalidDecision(why));
                        self.fail_mode_action(shared).await
                    }
                    Err(error) => Action::Unreachable(error),
                }
            }
            Ok(Decision::Terminate(_)) => {
                let why = "terminate is not supported by this limen (no certificate store)";
                failure = Some(PolicyError::InvalidDecision(why.into()));
                self.fail_mode_action(shared).await
            }
            Err(error) => {
                failure = Some(error);
                self.fail_mode_action(shared).await
            }
        };
        if let Some(error) = &failure {
            shared
                .metrics
                .policy_failures
                .with_label_values(&[error.kind()])
                .inc();
            tracing::warn!(
                client = %self.accepted.conn.client, listener = %self.accepted.conn.listener,
                kind = error.kind(), "policy failed, applying on_error: {error}"
            );
        }
        Decided {
            peeked: self,
            action,
            failure,
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
                let timeout = upstream
                    .connect_timeout
                    .unwrap_or(shared.limits.connect_timeout)
                    .min(MAX_CONNECT_TIMEOUT);
                let up = match upstream::connect(&addrs, timeout).await {
                    Ok(up) => up,
                    Err(error) => {
                        unreachable(shared, &conn, sni.as_deref(), policy, stream, error).await;
                        return;
                    }
                };
                let _ = stream.set_nodelay(true);
                let peeked_len = peeked.bytes.len();
                let preamble = match upstream.proxy_protocol {
                    Some(version) => [
                        proxy_header::build(version, conn.client, conn.local),
                        peeked.bytes,
                    ]
                    .concat(),
                    None => peeked.bytes,
                };
                let limits = &shared.limits;
                let replayed = peeked_len;
                let report = passthrough::run(
                    stream,
                    up,
                    &preamble,
                    replayed,
                    limits.idle_timeout,
                    limits.copy_buffer,
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
        }
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
