//! One connection's life, as a typestate: `Accepted` → `Peeked` →
//! `Decided` → done. Each step takes `self`, so the policy cannot be
//! skipped or asked twice, and only a `Decided` connection reaches an action.
//! The stages are described in `host/LIFECYCLE.md`; carrying out the
//! action is in `execute.rs`, the access log line in `trail.rs`.

mod challenge;
pub(crate) mod decide;
mod execute;
mod report;
mod trail;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::decision::Alert;
use crate::observe::metrics::{Active, ListenerMetrics};
use crate::outcome::ParseFailure;
use crate::path::action::{Action, reject};
use crate::path::admission::Admitted;
use crate::path::peek::{self, FirstBytes};
use crate::policy::Connection;
use crate::policy::limit_table::Held;
use crate::state::live::{Generation, Snapshot};
use trail::Trail;

/// The first established connection logs its task's size (debug), once.
static SIZE_LOGGED: AtomicBool = AtomicBool::new(false);

/// What a connection keeps from accept to close: who it is and the
/// configuration generation it was accepted under.
struct Context {
    conn: Connection,
    generation: Arc<Generation>,
    force_close: CancellationToken,
}

/// A socket just accepted.
struct Accepted {
    stream: TcpStream,
    /// Its place in the listener's pending-hello budget, and its deadline.
    admitted: Admitted,
    /// The policy (and any candidate on trial) live when the connection was
    /// accepted: a swap during its peek does not change what decides it.
    live: Arc<Snapshot>,
    /// Its place in `limen_connections_active`, and its listener's series.
    active: Active,
}

/// Its ClientHello (or non-TLS first bytes) is buffered; the hello itself
/// is in the trail, which keeps it for the access log.
struct Peeked {
    stream: TcpStream,
    live: Arc<Snapshot>,
    active: Active,
    /// Everything read so far, to be replayed.
    bytes: Vec<u8>,
}

/// The policy (or its fail mode) has spoken, and the upstream is resolved.
struct Decided {
    stream: TcpStream,
    active: Active,
    bytes: Vec<u8>,
    action: Action,
    /// Concurrency slots the policy acquired, held until the connection ends.
    held: Held,
}

impl Accepted {
    /// Gather the ClientHello. A failure is counted, logged and closed here.
    async fn peek(mut self, cx: &Context, trail: &mut Trail) -> Option<Peeked> {
        let limits = &cx.generation.limits;
        let started = Instant::now();
        let timeout = self.admitted.hello_timeout;
        let peeked = peek::peek(&mut self.stream, limits.hello_max_bytes, timeout).await;
        // The hello is in (or never will be): no longer pending.
        drop(self.admitted.pending);
        let took = started.elapsed();
        let metrics = self.active.metrics();
        metrics.peek_duration.observe(took.as_secs_f64());
        let (bytes, hello) = match peeked {
            Ok(FirstBytes::Hello { bytes, hello }) => (bytes, Some(hello)),
            Ok(FirstBytes::NotTls(bytes)) => {
                // Not a failure of the connection (the policy still
                // decides it, with `hello` none), but no ClientHello.
                metrics.parse_failed(ParseFailure::NotTls);
                (bytes, None)
            }
            Err(error) => {
                trail.peeked(took, None);
                let reason = error.reason();
                metrics.parse_failed(reason);
                report::peek_failed(&cx.conn, reason, &error);
                // No alert: limen has no reason to believe the peer speaks TLS
                // well enough to read one, and nothing reaches any upstream.
                // Noted before the linger, so a shutdown cutting it logs
                // how the connection really ended.
                trail.ended((0, 0), error.end());
                // Boxed: the linger's state would otherwise be carried by
                // every connection while it waits for its hello.
                Box::pin(reject::run(self.stream, Alert::Close, None)).await;
                return None;
            }
        };
        trail.peeked(took, hello);
        Some(Peeked {
            stream: self.stream,
            live: self.live,
            active: self.active,
            bytes,
        })
    }
}

impl Peeked {
    /// Ask the policy, plan its decision, apply the fail mode on any
    /// failure, resolve the upstream.
    async fn decide(mut self, cx: &Context, trail: &mut Trail) -> Decided {
        if let Some(action) = self.challenge(cx, trail) {
            return self.decided_by_limen(action);
        }
        let trial = self.live.trial.as_deref();
        let verdict = decide::decide(
            (&self.live.policy, trial),
            &cx.conn,
            trail.hello(),
            &cx.generation,
            self.active.metrics(),
        )
        .await;
        trail.decided(verdict.result, verdict.version);
        Decided {
            stream: self.stream,
            active: self.active,
            bytes: self.bytes,
            action: verdict.action,
            held: verdict.held,
        }
    }
}
/// Drive one connection from accept to its decision, under the `snapshot`
/// taken at accept. What is left, carrying the decision out, is spawned on
/// `tracker` as a task of its own: a task is as large as its largest stage,
/// so a connection still waiting for its hello would otherwise carry the
/// state of a copy, and an established one the state of a peek.
// Not an `async fn`: an `async fn` keeps its arguments in the task beside
// what the body builds from them.
pub(crate) fn handle(
    stream: TcpStream,
    conn: Connection,
    (snapshot, metrics): (Arc<Snapshot>, Arc<ListenerMetrics>),
    force_close: CancellationToken,
    (permit, tracker): (OwnedSemaphorePermit, TaskTracker),
    admitted: Admitted,
) -> impl Future<Output = ()> + Send {
    let mut trail = Trail::new();
    let accepted = Accepted {
        stream,
        admitted,
        live: snapshot.clone(),
        active: Active::new(metrics),
    };
    let cx = Context {
        conn,
        generation: snapshot.generation.clone(),
        force_close,
    };
    async move {
        let decided = {
            let run = async {
                let peeked = accepted.peek(&cx, &mut trail).await?;
                // Boxed for the moment it runs: the policy call's state would
                // otherwise be carried by every connection while it peeks.
                Some(Box::pin(peeked.decide(&cx, &mut trail)).await)
            };
            // When the shutdown grace period is over, every stage ends, not
            // only the copy (whose trail then ends `shutdown`).
            tokio::select! {
                biased;
                decided = run => decided,
                () = cx.force_close.cancelled() => None,
            }
        };
        match decided {
            Some(decided) => {
                let task = Established { decided, cx, trail }.run(permit);
                if !SIZE_LOGGED.swap(true, Ordering::Relaxed) {
                    let bytes = std::mem::size_of_val(&task);
                    tracing::debug!(bytes, "established connection's task size");
                }
                tracker.spawn(task);
            }
            None => trail.finish(&cx.generation, &cx.conn),
        }
    }
}

/// A decided connection, to be carried out in its own task.
pub(crate) struct Established {
    decided: Decided,
    cx: Context,
    trail: Trail,
}

impl Established {
    /// Carry the decision out and leave the access log line; `permit`, the
    /// connection's place under the connection limit, is held until then.
    // Not an `async fn`: its `self` would be kept in the task beside the
    // parts the body moves out of it (an `async fn` keeps its arguments).
    pub(crate) fn run(self, permit: OwnedSemaphorePermit) -> impl Future<Output = ()> {
        let Established {
            decided,
            cx,
            mut trail,
        } = self;
        async move {
            // Biased: a copy under way sees the same cancellation and ends
            // itself with `end=shutdown` and its byte counts; this branch
            // only cuts the stages before it (connect, handshake, linger).
            tokio::select! {
                biased;
                () = decided.execute(&cx, &mut trail) => {}
                () = cx.force_close.cancelled() => {}
            }
            trail.finish(&cx.generation, &cx.conn);
            drop(permit);
        }
    }
}
