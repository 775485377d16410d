//! Copying both ways between a client and its upstream until both directions
//! are finished: the last stage of passthrough and of terminate alike.
//!
//! Half-close is honoured: when one side sends FIN, limen shuts down its write
//! half towards the other side and keeps copying the other direction. The
//! connection ends when both directions are done, when nothing moves for the
//! idle timeout, or when shutdown's grace period runs out.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outcome::End;

/// Bytes each way and how it ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    /// Client to upstream, the replayed hello included.
    pub(crate) up: u64,
    /// Upstream to client.
    pub(crate) down: u64,
    /// One of `client_close`, `upstream_close`, `client_reset`,
    /// `upstream_reset`, `idle_timeout`, `io_error`, `shutdown`.
    pub(crate) end: End,
}

/// A stream limen can reset: its TCP socket.
pub(crate) trait Socket {
    /// The TCP connection under it.
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl<S: Socket> Socket for Box<S> {
    fn tcp(&self) -> &TcpStream {
        (**self).tcp()
    }
}

impl<S: Socket> Socket for super::replay::Replay<S> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().tcp()
    }
}

impl<S: Socket> Socket for tokio_rustls::server::TlsStream<S> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.tcp()
    }
}

impl<S: Socket> Socket for tokio_rustls::client::TlsStream<S> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.tcp()
    }
}

/// `side` failed: how the connection ended. A reset (or a write that found
/// the peer gone) is passed on: the other socket is set to reset when it
/// closes, so its peer sees an abort rather than a clean end of a stream
/// that was cut short. Other errors (a TLS client closing without
/// close_notify, a timeout) close the other side normally, as before.
pub(super) fn failed(side: u8, error: &io::Error, other: &TcpStream) -> End {
    if !is_reset(error) {
        return End::IoError;
    }
    // SO_LINGER 0: close sends RST and drops unsent bytes, as the failed
    // side's did.
    let _ = socket2::SockRef::from(other).set_linger(Some(Duration::ZERO));
    match side {
        CLIENT => End::ClientReset,
        _ => End::UpstreamReset,
    }
}

/// Copy both ways (the `replayed` bytes already sent upstream: the peeked
/// hello, or a terminated client's first bytes).
pub(crate) async fn run<C, U>(
    mut client: C,
    mut upstream: U,
    replayed: usize,
    idle: Duration,
    buffer: usize,
    force_close: &CancellationToken,
) -> Report
where
    C: AsyncRead + AsyncWrite + Unpin + Socket,
    U: AsyncRead + AsyncWrite + Unpin + Socket,
{
    let start = Instant::now();
    let activity = AtomicU64::new(0);
    let (up, down) = (AtomicU64::new(replayed as u64), AtomicU64::new(0));
    let first_eof = AtomicU8::new(NO_EOF);
    let failed_side = AtomicU8::new(NO_EOF);
    let end = {
        let mut from_client = Metered {
            inner: &mut client,
            bytes: &up,
            activity: &activity,
            start,
            first_eof: &first_eof,
            failed: &failed_side,
            side: CLIENT,
        };
        let mut from_upstream = Metered {
            inner: &mut upstream,
            bytes: &down,
            activity: &activity,
            start,
            first_eof: &first_eof,
            failed: &failed_side,
            side: UPSTREAM,
        };
        let copy = tokio::io::copy_bidirectional_with_sizes(
            &mut from_client,
            &mut from_upstream,
            buffer,
            buffer,
        );
        // Whichever finishes first decides how the connection ended; the
        // others are cancelled with it, and the sockets close on drop.
        tokio::select! {
            result = copy => match (result, first_eof.load(Ordering::Relaxed)) {
                (Ok(_), UPSTREAM) => End::UpstreamClose,
                (Ok(_), _) => End::ClientClose,
                (Err(error), _) => match failed_side.load(Ordering::Relaxed) {
                    UPSTREAM => failed(UPSTREAM, &error, client.tcp()),
                    _ => failed(CLIENT, &error, upstream.tcp()),
                },
            },
            () = idle_watch(&activity, start, idle) => End::IdleTimeout,
            () = force_close.cancelled() => End::Shutdown,
        }
    };
    Report {
        up: up.into_inner(),
        down: down.into_inner(),
        end,
    }
}

/// A read or write that found the peer gone: reset, or closed under a write.
pub(super) fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// Write `preamble` upstream before any copy (passthrough: the PROXY
/// header, then the peeked bytes); how the connection ended if it ended
/// there. An upstream that never reads must not hold the connection
/// forever, so the idle timeout bounds the write.
pub(super) async fn send_preamble<U: AsyncWrite + Unpin>(
    upstream: &mut U,
    preamble: &[u8],
    idle: Duration,
    force_close: &CancellationToken,
) -> Result<(), End> {
    let ended = tokio::select! {
        result = write_all_flush(upstream, preamble) => match result {
            Ok(()) => return Ok(()),
            Err(_) => End::IoError,
        },
        () = tokio::time::sleep(idle) => End::IdleTimeout,
        () = force_close.cancelled() => End::Shutdown,
    };
    Err(ended)
}

async fn write_all_flush<U: AsyncWrite + Unpin>(upstream: &mut U, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    upstream.write_all(bytes).await?;
    // A TLS stream buffers what it encrypts until flushed.
    upstream.flush().await
}

/// Resolves once no byte has moved for `idle`.
pub(super) async fn idle_watch(activity: &AtomicU64, start: Instant, idle: Duration) {
    loop {
        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
        let deadline = start + last + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// Who reached end-of-stream first: nobody yet, the client, the upstream.
pub(super) const NO_EOF: u8 = 0;
pub(super) const CLIENT: u8 = 1;
pub(super) const UPSTREAM: u8 = 2;

/// The side across from `side` (`CLIENT` or `UPSTREAM`).
pub(super) fn other(side: u8) -> u8 {
    if side == CLIENT { UPSTREAM } else { CLIENT }
}

/// Counts bytes read from one side, stamps the time of the last activity and
/// notes which side reached end-of-stream first (who closed the connection)
/// and which failed first (who reset it).
struct Metered<'a, S> {
    inner: &'a mut S,
    bytes: &'a AtomicU64,
    activity: &'a AtomicU64,
    start: Instant,
    first_eof: &'a AtomicU8,
    failed: &'a AtomicU8,
    side: u8,
}

impl<S> Metered<'_, S> {
    /// Note this side as the one that failed, if none has yet.
    fn check<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(_)) = &poll {
            let _ = self.failed.compare_exchange(
                NO_EOF,
                self.side,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        poll
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut *self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
            let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.activity.store(millis, Ordering::Relaxed);
        } else if matches!(poll, Poll::Ready(Ok(()))) && buf.remaining() > 0 {
            let _ = self.first_eof.compare_exchange(
                NO_EOF,
                self.side,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        self.check(poll)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut *self.inner).poll_write(cx, buf);
        self.check(poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut *self.inner).poll_flush(cx);
        self.check(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut *self.inner).poll_shutdown(cx);
        self.check(poll)
    }
}
