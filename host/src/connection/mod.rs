//! One connection's life, as a typestate: [`Accepted`] → [`Peeked`] →
//! [`Decided`] → done. Each step takes `self`, so the policy cannot be
//! skipped or asked twice, and only a `Decided` connection reaches an action.
//! The stages are described in `host/LIFECYCLE.md`; carrying out the
//! action is in `execute.rs`.

mod execute;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use rustls::ServerConfig;

use crate::action::reject;
use crate::config::FailMode;
use crate::decision::{Alert, Decision, Terminate, Upstream, UpstreamAddr};
use crate::metrics::{Active, ListenerMetrics, RouteResult};
use crate::peek::{self, PeekedBytes};
use crate::policy::{Connection, Policy, PolicyError};
use crate::server::Shared;
use crate::upstream::{self, Own, UpstreamError};
use report::Trail;

/// However long a policy asks for, a connect attempt ends after this.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// A socket just accepted.
pub(crate) struct Accepted {
    stream: TcpStream,
    conn: Connection,
    /// The policy live when the connection was accepted: a swap during its
    /// peek does not change what decides it.
    policy: Arc<Policy>,
    /// Its place in `limen_connections_active`, and its listener's series.
    active: Active,
    trail: Trail,
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
    pub(crate) fn new(
        stream: TcpStream,
        conn: Connection,
        policy: Arc<Policy>,
        metrics: Arc<ListenerMetrics>,
    ) -> Accepted {
        Accepted {
            stream,
            conn,
            policy,
            active: Active::new(metrics),
            trail: Trail::new(Instant::now()),
        }
    }

    /// Gather the ClientHello. A failure is counted, logged and closed here.
    pub(crate) async fn peek(mut self, shared: &Shared) -> Option<Peeked> {
        let limits = &shared.limits;
        let started = Instant::now();
        let peeked = peek::peek(
            &mut self.stream,
            limits.hello_max_bytes,
            limits.hello_timeout,
        )
        .await;
        let took = started.elapsed();
        self.trail.peek = took;
        let metrics = self.active.metrics();
        metrics.peek_duration.observe(took.as_secs_f64());
        match peeked {
            Ok(peeked) => {
                if peeked.hello.is_none() {
                    // Not a failure of the connection (the policy still
                    // decides it, with `hello` none), but no ClientHello.
                    metrics.parse_failed("not_tls");
                }
                Some(Peeked {
                    accepted: self,
                    peeked,
                })
            }
            Err(error) => {
                let reason = error.reason();
                metrics.parse_failed(reason);
                report::peek_failed(&self.conn, reason, &error);
                // No alert: limen has no reason to believe the peer speaks TLS
                // well enough to read one, and nothing reaches any upstream.
                reject::run(self.stream, Alert::Close, None).await;
                self.trail.finish(shared, &self.conn, (0, 0), error.end());
                None
            }
        }
    }
}

impl Peeked {
    /// Ask the policy, apply the fail mode on any failure, resolve the upstream.
    pub(crate) async fn decide(mut self, shared: &Shared) -> Decided {
        let metrics = &shared.metrics;
        let started = Instant::now();
        let verdict = self
            .accepted
            .policy
            .decide(&self.accepted.conn, self.peeked.hello.as_ref())
            .await;
        metrics.policy_call.observe(started.elapsed().as_secs_f64());
        let (result, miss) = match &verdict {
            Ok(verdict) => {
                metrics.policy_fuel.observe(verdict.fuel_used as f64);
                if verdict.recycled {
                    metrics.policy_recycled.inc();
                }
                report::classify(&verdict.decision, verdict.rule)
            }
            Err(_) => (RouteResult::PolicyError, false),
        };
        let planned = match verdict {
            Ok(verdict) => self.plan(shared, verdict.decision).await,
            Err(error) => Err(error),
        };
        let (action, failure, result) = match planned {
            Ok(action) => (action, None, result),
            Err(error) => {
                metrics.policy_failed(error.kind());
                let action = self.fail_mode_action(shared).await;
                (action, Some(error), RouteResult::PolicyError)
            }
        };
        let listener = self.accepted.active.metrics();
        listener.route(result);
        if miss && failure.is_none() {
            listener.misses.inc();
        }
        match &action {
            Action::Passthrough { upstream, .. } => metrics.routed_to(&upstream.addr),
            Action::Terminate { terminate, .. } => metrics.routed_to(&terminate.upstream.addr),
            Action::Reject(_) | Action::Unreachable(_) => {}
        }
        report::decided(
            &self.accepted.conn,
            self.peeked.hello.as_ref(),
            &action,
            result,
            miss,
            failure.as_ref(),
        );
        self.accepted.trail.result = Some(result);
        Decided {
            peeked: self,
            action,
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
    // Biased: a copy under way sees the same cancellation and ends itself
    // with `end=shutdown` counted and logged; this branch only cuts the
    // stages before it.
    tokio::select! {
        biased;
        () = run => {}
        () = force_close.cancelled() => {}
    }
}
