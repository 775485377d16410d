//! Before a pool member's first byte: the one moment a member that fails
//! can be replaced without the client seeing it. A member killed with
//! connections in its listen queue resets them after limen connected and
//! sent the hello; until the member has answered, and while limen holds
//! everything the client sent, the same bytes can go to another member
//! (`upstream/pool/tries.rs` picks it and keeps the count).
//!
//! Only pool connections with a retry left wait here: a connection to an
//! address, or to a pool with none left, goes straight to its copy.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::outcome::{End, RetryReason};

/// The most of the client's plaintext a terminated connection keeps for a
/// replay: a request's head. A client that sends more before the member
/// answers is committed to that member.
const KEPT: usize = 16 * 1024;

/// How the wait for the member's first byte ended.
pub(super) enum First {
    /// The member answered, or the client sent what limen does not keep:
    /// the connection stays with this member.
    Committed,
    /// The member reset or closed before its first byte, and limen holds
    /// everything the client sent: another member may take it.
    Failed(RetryReason),
    /// Nothing moved for the idle timeout, or the shutdown's grace ran out.
    Ended(End),
}

/// Passthrough: the peeked bytes are with `upstream`; wait for its first
/// byte (left in the socket for the copy) or for anything from the client
/// (a TLS client sends nothing more before the server's flight, so this is
/// rare and commits).
pub(super) async fn passthrough(
    client: &TcpStream,
    upstream: &TcpStream,
    idle: Duration,
    force_close: &CancellationToken,
) -> First {
    let mut byte = [0u8; 1];
    tokio::select! {
        biased;
        answer = upstream.peek(&mut byte) => answered(answer),
        _ = client.readable() => First::Committed,
        () = tokio::time::sleep(idle) => First::Ended(End::IdleTimeout),
        () = force_close.cancelled() => First::Ended(End::Shutdown),
    }
}

/// Terminate in plaintext: wait for the member's first byte, forwarding
/// what the client sends meanwhile and keeping it in `sent` for a replay
/// (`sent` already went to this member). Past [`KEPT`], or past nothing if
/// the pool does not `replay` requests, the connection commits (even if
/// that write failed: part of it may have reached the member); `sent` then
/// holds everything forwarded, for the byte count.
pub(super) async fn terminated<C: AsyncRead + Unpin>(
    (client, upstream): (&mut C, &mut TcpStream),
    (sent, replay): (&mut Vec<u8>, bool),
    idle: Duration,
    force_close: &CancellationToken,
) -> First {
    let keep = if replay { KEPT } else { 0 };
    let mut byte = [0u8; 1];
    loop {
        let from = sent.len();
        sent.reserve(4096);
        tokio::select! {
            biased;
            answer = upstream.peek(&mut byte) => return answered(answer),
            read = client.read_buf(sent) => match read {
                // The client is done or failed: the copy sees it and says how.
                Ok(0) | Err(_) => return First::Committed,
                Ok(_) => {}
            },
            () = tokio::time::sleep(idle) => return First::Ended(End::IdleTimeout),
            () = force_close.cancelled() => return First::Ended(End::Shutdown),
        }
        let written = upstream.write_all(&sent[from..]).await;
        if sent.len() > keep {
            return First::Committed;
        }
        if let Err(error) = written {
            return broken(&error).map_or(First::Committed, First::Failed);
        }
    }
}

/// What a peek at the member's first byte says.
fn answered(answer: io::Result<usize>) -> First {
    match answer {
        Ok(0) => First::Failed(RetryReason::Closed),
        Ok(_) => First::Committed,
        // Another error: the copy meets it too and reports it.
        Err(error) => broken(&error).map_or(First::Committed, First::Failed),
    }
}

/// A write or read that found the member gone: a reset.
pub(super) fn broken(error: &io::Error) -> Option<RetryReason> {
    super::pipe::is_reset(error).then_some(RetryReason::Reset)
}
