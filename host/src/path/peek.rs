//! Gathering the ClientHello: read (never forward) until `hello::examine` says
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
        // `readable` spends no tokio budget and a full read keeps the
        // readiness set, so a hello arriving faster than it is read would
        // otherwise loop here without ever yielding (the read below returns
        // `Pending` once the budget is spent, readiness still set): the
        // worker and its other connections would starve.
        tokio::task::consume_budget().await;
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
            // The readiness was stale (or the task's budget is spent):
            // give the room back before waiting.
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::{PeekError, peek};

    /// A ClientHello declaring `declared` bytes, of which the first `sent`
    /// are given, in records of 16 KiB.
    fn partial_hello(declared: usize, sent: usize) -> Vec<u8> {
        let len = u32::try_from(declared).expect("small");
        let mut body = vec![1u8];
        body.extend_from_slice(&len.to_be_bytes()[1..]);
        body.resize(sent, 0);
        let mut out = Vec::new();
        for chunk in body.chunks(16 * 1024) {
            let n = u16::try_from(chunk.len()).expect("16 KiB");
            out.extend_from_slice(&[0x16, 3, 1]);
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// 600 KB of a 900 KB hello already buffered in the socket: the peek
    /// must keep yielding (and so meet its deadline) rather than spin in one
    /// poll once its task's budget is spent.
    #[test]
    fn a_hello_arriving_faster_than_it_is_read_still_meets_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        socket2::SockRef::from(&listener)
            .set_recv_buffer_size(4 << 20)
            .expect("SO_RCVBUF");
        let mut client = StdStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let bytes = partial_hello(900_000, 600_000);
        let writer = std::thread::spawn(move || {
            client.write_all(&bytes).expect("write");
            client
        });
        // Let the kernel take it all in before the peek starts.
        std::thread::sleep(Duration::from_millis(300));
        let (done, outcome) = mpsc::channel();
        // Its own thread: a peek that never yields would hang any runtime
        // this test's own thread drove.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let result = rt.block_on(async move {
                server.set_nonblocking(true).expect("nonblocking");
                let mut stream = tokio::net::TcpStream::from_std(server).expect("register");
                peek(&mut stream, 1 << 20, Duration::from_millis(500)).await
            });
            let _ = done.send(result.map(|_| ()));
        });
        let result = outcome
            .recv_timeout(Duration::from_secs(10))
            .expect("the peek never returned: it spun without yielding");
        assert!(matches!(result, Err(PeekError::TimedOut(_))), "{result:?}");
        drop(writer.join());
    }
}
