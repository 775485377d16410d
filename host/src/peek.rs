//! Gathering the ClientHello: read (never forward) until `hello::frame` says
//! a whole ClientHello is buffered, within a size cap and a deadline.
//!
//! Reads, not `TcpStream::peek`: peek returns at once while a partial hello
//! sits in the socket, so waiting for the rest would spin. Everything read is
//! kept, in order, and replayed to the upstream.

use std::io;
use std::task::Poll;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::hello::{self, Examined, HelloError, HelloSummary};
use crate::outcome::{End, ParseFailure};

/// Room made for each read: most ClientHellos fit in one; post-quantum ones
/// (about 1.8 KB) too, unless split across segments.
const READ_SIZE: usize = 2048;

/// The bytes read and what they are. Either way every byte read is kept, in
/// order, to be replayed.
// Made once per connection and taken apart at once: boxing the hello
// would add an allocation to every connection to save a move.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum FirstBytes {
    /// A whole ClientHello (and anything the client sent after it).
    Hello { bytes: Vec<u8>, hello: HelloSummary },
    /// The first byte was not a TLS handshake record.
    NotTls(Vec<u8>),
}

/// Why no ClientHello was obtained. None of these reach the policy.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeekError {
    /// The whole hello did not arrive in time.
    #[error("no complete ClientHello after {0:?}")]
    TimedOut(Duration),
    /// Larger than the configured cap.
    #[error("ClientHello larger than the cap")]
    TooLarge,
    /// Not a well-formed ClientHello.
    #[error("malformed ClientHello: {0}")]
    Malformed(HelloError),
    /// The client closed before sending a whole hello (`read` bytes).
    #[error("client closed after {0} bytes")]
    Closed(usize),
    /// The socket failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

impl PeekError {
    /// Its metric label.
    pub(crate) fn reason(&self) -> ParseFailure {
        match self {
            PeekError::TimedOut(_) => ParseFailure::Timeout,
            PeekError::TooLarge => ParseFailure::TooLarge,
            PeekError::Malformed(_) | PeekError::Closed(1..) => ParseFailure::Malformed,
            // A connect-and-close (a TCP health check) is not a bad hello.
            PeekError::Closed(0) => ParseFailure::Closed,
            PeekError::Io(_) => ParseFailure::IoError,
        }
    }

    /// How the connection ended, for the access log.
    pub(crate) fn end(&self) -> End {
        match self {
            PeekError::TimedOut(_) => End::HelloTimeout,
            PeekError::Closed(0) => End::ClientClose,
            PeekError::Io(_) => End::IoError,
            PeekError::TooLarge | PeekError::Malformed(_) | PeekError::Closed(1..) => End::BadHello,
        }
    }
}

impl From<HelloError> for PeekError {
    fn from(error: HelloError) -> PeekError {
        match error {
            HelloError::TooLarge => PeekError::TooLarge,
            other => PeekError::Malformed(other),
        }
    }
}

/// Read until a complete ClientHello (or non-TLS bytes) is buffered.
///
/// Room is made only once bytes are ready to read, and a hello still
/// incomplete waits holding only what arrived: a connection stalled
/// mid-hello costs its bytes, not a buffer.
pub(crate) async fn peek(
    stream: &mut TcpStream,
    max_bytes: usize,
    timeout: Duration,
) -> Result<FirstBytes, PeekError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut bytes = Vec::new();
    loop {
        tokio::time::timeout_at(deadline, stream.readable())
            .await
            .map_err(|_| PeekError::TimedOut(timeout))??;
        let room = max_bytes - bytes.len();
        if room == 0 {
            return Err(PeekError::TooLarge);
        }
        if bytes.len() == bytes.capacity() {
            bytes.reserve_exact(READ_SIZE.min(room));
        }
        // One attempt, no wait: a short read clears tokio's readiness (a
        // `try_read` would not), so neither the next wait here nor the
        // copy's first one wakes for bytes already taken.
        let attempt = {
            let mut read = std::pin::pin!(stream.read_buf(&mut bytes));
            std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await
        };
        let n = match attempt {
            Poll::Ready(read) => read?,
            // The readiness was stale: give the room back before waiting.
            Poll::Pending => {
                bytes.shrink_to_fit();
                continue;
            }
        };
        if n == 0 {
            return Err(PeekError::Closed(bytes.len()));
        }
        return match hello::examine(&bytes, max_bytes)? {
            Examined::NeedMore => {
                // The rest may take a while, or never come. Shrinking in
                // place costs no copy.
                bytes.shrink_to_fit();
                continue;
            }
            Examined::NotTls => Ok(FirstBytes::NotTls(bytes)),
            Examined::Hello(hello) => Ok(FirstBytes::Hello { bytes, hello }),
        };
    }
}
