//! Gathering the ClientHello: read (never forward) until `hello::frame` says
//! a whole ClientHello is buffered, within a size cap and a deadline.
//!
//! Reads, not `TcpStream::peek`: peek returns at once while a partial hello
//! sits in the socket, so waiting for the rest would spin. Everything read is
//! kept, in order, and replayed to the upstream.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::hello::{self, HelloError, HelloSummary, Progress};

/// Most ClientHellos fit; post-quantum ones (about 1.8 KB) grow the buffer once.
const INITIAL_CAPACITY: usize = 2048;

/// The bytes read and what they are.
#[derive(Debug)]
pub(crate) struct PeekedBytes {
    /// Everything read from the client so far, to be replayed.
    pub(crate) bytes: Vec<u8>,
    /// The parsed hello, or `None` when the first bytes were not TLS.
    pub(crate) hello: Option<HelloSummary>,
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
    /// Metric label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            PeekError::TimedOut(_) => "timeout",
            PeekError::TooLarge => "too_large",
            PeekError::Malformed(_) | PeekError::Closed(1..) => "malformed",
            // A connect-and-close (a TCP health check) is not a bad hello.
            PeekError::Closed(0) => "closed",
            PeekError::Io(_) => "io_error",
        }
    }

    /// How the connection ended, for the access log.
    pub(crate) fn end(&self) -> &'static str {
        match self {
            PeekError::TimedOut(_) => "hello_timeout",
            PeekError::Closed(0) => "client_close",
            PeekError::Io(_) => "io_error",
            PeekError::TooLarge | PeekError::Malformed(_) | PeekError::Closed(1..) => "bad_hello",
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
pub(crate) async fn peek<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_bytes: usize,
    timeout: Duration,
) -> Result<PeekedBytes, PeekError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut bytes = Vec::with_capacity(INITIAL_CAPACITY.min(max_bytes));
    loop {
        let room = (max_bytes - bytes.len()) as u64;
        let read = async { (&mut *stream).take(room).read_buf(&mut bytes).await };
        let n = tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| PeekError::TimedOut(timeout))??;
        if n == 0 {
            return Err(PeekError::Closed(bytes.len()));
        }
        let hello = match hello::frame(&bytes, max_bytes)? {
            Progress::NeedMore => continue,
            Progress::NotTls => None,
            Progress::Complete(framed) => Some(HelloSummary::parse(&framed)?),
        };
        return Ok(PeekedBytes { bytes, hello });
    }
}
