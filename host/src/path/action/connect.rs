//! Reaching the upstream, for passthrough and terminate alike: connect
//! within the decision's timeout, count and log an upstream that cannot be
//! reached, count the bytes moved once the copy is over.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::pipe::Report;
use super::{Ended, Notes, Scope, reject};
use crate::decision::{Alert, Upstream, UpstreamAddr};
use crate::observe::access;
use crate::outcome::End;
use crate::policy::Connection;
use crate::state::live::Generation;
use crate::upstream::pool::Tries;
use crate::upstream::{self, Connected, Dest, UpstreamError};

/// However long a policy asks for, a connect attempt ends after this.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Connect within the decision's timeout (capped), or limen's default (per
/// member tried, for a pool, skipping those in `tries`); the time it took
/// goes to the histogram and the access log.
pub(crate) async fn connect(
    cx: &impl Scope,
    notes: &mut impl Notes,
    (upstream, dest): (&Upstream, &Dest),
    tries: &mut Tries,
) -> Result<Connected, UpstreamError> {
    let generation = cx.generation();
    let timeout = upstream
        .connect_timeout
        .unwrap_or(generation.limits.connect_timeout)
        .min(MAX_CONNECT_TIMEOUT);
    let key = match dest {
        Dest::Pool(pool) => {
            let sni = notes.hello().and_then(|h| h.sni()).map(|n| n.as_ref());
            pool.key(cx.conn().client.ip(), sni)
        }
        Dest::Addrs(_) => 0,
    };
    let started = Instant::now();
    let stream = upstream::connect_to(dest, (key, tries), timeout).await?;
    let took = started.elapsed();
    generation.metrics.connected(took);
    notes.connected(took);
    Ok(stream)
}

/// No upstream connection (to `upstream`, if one was tried): counted,
/// logged, and the client gets a bare close (limen is not the TLS endpoint,
/// so it has no alert to speak for the upstream).
pub(crate) async fn unreachable(
    cx: &impl Scope,
    notes: &mut impl Notes,
    client: TcpStream,
    error: &UpstreamError,
    upstream: Option<UpstreamAddr>,
) -> Ended {
    notes.acting(access::ActionTaken::Unreachable, upstream);
    let (moved, end) = failed(cx.generation(), cx.conn(), error);
    // Noted before the linger, which a shutdown may cut.
    notes.ended(moved, end);
    reject::run(client, Alert::Close, None).await;
    (moved, end)
}

/// Count and log an upstream that could not be reached (or verified).
pub(crate) fn failed(generation: &Generation, conn: &Connection, error: &UpstreamError) -> Ended {
    let reason = error.reason();
    generation.metrics.upstream_failed(reason);
    tracing::info!(
        target: "tls_sni", listener = &*conn.listener, client = %conn.client,
        reason = reason.as_str(), %error, "upstream.connect_failed"
    );
    ((0, 0), End::ConnectFailed)
}

/// Count what the copy moved.
pub(crate) fn counted(generation: &Generation, report: &Report) -> Ended {
    generation.metrics.bytes_up.inc_by(report.up);
    generation.metrics.bytes_down.inc_by(report.down);
    ((report.up, report.down), report.end)
}
