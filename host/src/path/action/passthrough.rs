//! Passthrough: connect the upstream, then send it the PROXY header (if
//! asked), the peeked bytes exactly as they arrived, and whatever follows,
//! both ways.

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::connect::{self, counted};
#[cfg(not(target_os = "linux"))]
use super::pipe;
use super::pipe::Report;
use super::{Ended, Notes, Scope, proxy_header};
use crate::decision::Upstream;
use crate::observe::access;
use crate::state::config::Limits;
use crate::upstream::{Connected, Dest};

/// Carry a passthrough out to `upstream` (at `dest`), `peeked` first, until
/// both directions are done; an upstream that cannot be reached gets the
/// client a bare close.
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
    // The lease, if a pool's, counts the connection on its member until the end.
    let Connected { stream: up, lease } = match connect::connect(cx, notes, upstream, dest).await {
        Ok(up) => up,
        Err(error) => {
            let addr = Some(upstream.addr.clone());
            return connect::unreachable(cx, notes, client, &error, addr).await;
        }
    };
    let hello = notes.hello();
    let alpn = hello.and_then(|h| h.alpn().next());
    let header = proxy_header::for_upstream(upstream, cx.conn(), hello, alpn);
    let generation = cx.generation();
    notes.hello_read(generation);
    let limits = &generation.limits;
    let report = copy(client, up, header, peeked, limits, cx.force_close()).await;
    drop(lease);
    counted(generation, &report)
}

/// Replay (after `header`, the PROXY header if the decision asked for one,
/// else empty) and pipe until both directions are done.
async fn copy(
    client: TcpStream,
    upstream: TcpStream,
    header: Vec<u8>,
    peeked: Vec<u8>,
    limits: &Limits,
    force_close: &CancellationToken,
) -> Report {
    let _ = client.set_nodelay(true);
    let replayed = peeked.len();
    let preamble = if header.is_empty() {
        peeked
    } else {
        [header, peeked].concat()
    };
    // A chunk that finds no pipe is copied (see `splice`), so nothing needs
    // checking here.
    #[cfg(target_os = "linux")]
    {
        let idle = limits.idle_timeout;
        super::splice::run(client, upstream, preamble, replayed, idle, force_close).await
    }
    #[cfg(not(target_os = "linux"))]
    pipe::run(
        client,
        upstream,
        preamble,
        replayed,
        limits.idle_timeout,
        limits.copy_buffer,
        force_close,
    )
    .await
}
