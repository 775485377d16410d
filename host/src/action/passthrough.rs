//! Passthrough: the upstream gets the PROXY header (if asked), then the
//! peeked bytes exactly as they arrived, then whatever follows, both ways.

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::pipe::{self, Report};
use super::proxy_header;
use crate::config::Limits;
use crate::decision::Upstream;
use crate::policy::Connection;

/// Replay and pipe until both directions are done.
pub(crate) async fn run(
    client: TcpStream,
    upstream: TcpStream,
    decision: &Upstream,
    conn: &Connection,
    peeked: Vec<u8>,
    limits: &Limits,
    force_close: &CancellationToken,
) -> Report {
    let _ = client.set_nodelay(true);
    let replayed = peeked.len();
    let preamble = match decision.proxy_protocol {
        Some(version) => [
            proxy_header::build(version, conn.client, conn.local),
            peeked,
        ]
        .concat(),
        None => peeked,
    };
    pipe::run(
        client,
        upstream,
        &preamble,
        replayed,
        limits.idle_timeout,
        limits.copy_buffer,
        force_close,
    )
    .await
}
