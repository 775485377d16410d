//! Passthrough: connect the upstream, then send it the PROXY header (if
//! asked), the peeked bytes exactly as they arrived, and whatever follows,
//! both ways.

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::connect::{self, counted};
use super::first::{self, First};
use super::pipe::{self, Report};
use super::{Ended, Notes, Scope, proxy_header};
use crate::decision::Upstream;
use crate::observe::access;
use crate::outcome::{End, RetryReason};
use crate::state::config::Limits;
use crate::upstream::pool::Tries;
use crate::upstream::{Connected, Dest};

/// Carry a passthrough out to `upstream` (at `dest`), `peeked` first, until
/// both directions are done; an upstream that cannot be reached gets the
/// client a bare close. A pool member that resets or closes before its
/// first byte is replaced by another while the pool's `retries` allow
/// (`first.rs`): the client has sent nothing but what limen holds.
pub(crate) async fn run(
    cx: &impl Scope,
    notes: &mut impl Notes,
    client: TcpStream,
    upstream: &Upstream,
    dest: &Dest,
    peeked: Vec<u8>,
) -> Ended {
    notes.acting(
        access::ActionTaken::Passthrough,
        Some(upstream.addr.clone()),
    );
    let generation = cx.generation();
    let (limits, force_close) = (&generation.limits, cx.force_close());
    let replayed = peeked.len();
    // The tries and the hello live in this block only: an established
    // connection's task carries neither while it copies for hours.
    let (up, lease) = {
        let hello = notes.hello();
        let alpn = hello.and_then(|h| h.alpn().next());
        let header = proxy_header::for_upstream(upstream, cx.conn(), hello, alpn);
        let preamble = if header.is_empty() {
            peeked
        } else {
            [header, peeked].concat()
        };
        notes.hello_read(generation);
        let mut tries = Tries::default();
        loop {
            // The lease, if a pool's, counts the connection on its member
            // until the end.
            let connected = connect::connect(cx, notes, (upstream, dest), &mut tries).await;
            let Connected {
                stream: mut up,
                lease,
            } = match connected {
                Ok(up) => up,
                Err(error) => {
                    let addr = Some(upstream.addr.clone());
                    return connect::unreachable(cx, notes, client, &error, addr).await;
                }
            };
            let retry = match dest {
                Dest::Pool(pool) if pool.may_retry(&tries) => Some(pool),
                _ => None,
            };
            let wait = retry.is_some();
            let first = replay(&client, &mut up, &preamble, wait, limits, force_close).await;
            // The peeked bytes reached the member unless the send failed.
            let (up_bytes, first) = match first {
                Ok(first) => (replayed as u64, first),
                Err(end) => (0, First::Ended(end)),
            };
            match (first, retry, lease) {
                (First::Failed(reason), Some(pool), Some(lease)) => {
                    pool.failed_before_answer(&lease, reason, &mut tries);
                }
                (First::Ended(end), _, _) => {
                    let report = Report {
                        up: up_bytes,
                        down: 0,
                        end,
                    };
                    return counted(generation, &report);
                }
                (_, _, lease) => break (up, lease),
            }
        }
    };
    let report = copy(client, up, replayed, limits, force_close).await;
    drop(lease);
    counted(generation, &report)
}

/// Send `preamble` (the PROXY header, if the decision asked for one, then
/// the peeked bytes) to a member just connected; when another may replace
/// it (`retry`), wait for its first byte. A write that fails is a reset
/// (retried) or, with no retry left, `Err`: the preamble did not get through.
async fn replay(
    client: &TcpStream,
    up: &mut TcpStream,
    preamble: &[u8],
    retry: bool,
    limits: &Limits,
    force_close: &CancellationToken,
) -> Result<First, End> {
    let idle = limits.idle_timeout;
    match (
        pipe::send_preamble(up, preamble, idle, force_close).await,
        retry,
    ) {
        (Ok(()), true) => Ok(first::passthrough(client, up, idle, force_close).await),
        (Ok(()), false) => Ok(First::Committed),
        (Err(End::IoError), true) => Ok(First::Failed(RetryReason::Reset)),
        (Err(end), _) => Err(end),
    }
}

/// Pipe until both directions are done (the `replayed` bytes sent).
async fn copy(
    client: TcpStream,
    upstream: TcpStream,
    replayed: usize,
    limits: &Limits,
    force_close: &CancellationToken,
) -> Report {
    let _ = client.set_nodelay(true);
    // A chunk that finds no pipe is copied (see `splice`), so nothing needs
    // checking here.
    #[cfg(target_os = "linux")]
    {
        let idle = limits.idle_timeout;
        super::splice::run(client, upstream, replayed, idle, force_close).await
    }
    #[cfg(not(target_os = "linux"))]
    pipe::run(
        client,
        upstream,
        replayed,
        limits.idle_timeout,
        limits.copy_buffer,
        force_close,
    )
    .await
}
