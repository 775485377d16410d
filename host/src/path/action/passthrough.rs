//! Passthrough: the upstream gets the PROXY header (if asked), then the
//! peeked bytes exactly as they arrived, then whatever follows, both ways.

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[cfg(not(target_os = "linux"))]
use super::pipe;
use super::pipe::Report;
use crate::state::config::Limits;

/// Replay (after `header`, the PROXY header if the decision asked for one,
/// else empty) and pipe until both directions are done.
pub(crate) async fn run(
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
