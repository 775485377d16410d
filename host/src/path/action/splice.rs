//! Passthrough's copy on Linux: splice(2) from one socket into a pipe and
//! from the pipe into the other socket, so the bytes never enter limen's
//! memory. Each direction waits for readiness first and only then takes a
//! pipe from this thread's pool, giving it back once drained: an idle
//! connection holds no pipe and no buffer, only its sockets.
//!
//! Same contract as `pipe::run` (half-close, idle timeout, shutdown, byte
//! counts, who closed first); `pipe::run` remains for terminated
//! connections, and a chunk that finds no pipe (descriptors short) is copied.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pipe::{CLIENT, NO_EOF, Report, UPSTREAM, failed, idle_watch, other};
use crate::outcome::End;

/// Bytes moved per splice call, and the capacity asked of each pipe (the
/// kernel's default is 64 KiB; a pipe's pages exist only while it holds
/// bytes, and a pipe is only held while they are in flight).
const CHUNK: usize = 512 * 1024;

/// Idle pipes kept per thread; more are closed when given back. Few: every
/// pipe of `CHUNK` counts 128 pages against the user's pipe allowance
/// (`fs.pipe-user-pages-soft`, 16384 by default) whether or not it holds
/// bytes, and past it the kernel hands out 8 KiB pipes.
const POOL: usize = 16;

thread_local! {
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// An empty pipe: (read end, write end).
struct Pipe(OwnedFd, OwnedFd);

impl Pipe {
    fn take() -> io::Result<Pipe> {
        if let Some(pipe) = PIPES.with_borrow_mut(Vec::pop) {
            return Ok(pipe);
        }
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // Fewer, larger moves for bulk transfers; the default size (refused
        // beyond /proc/sys/fs/pipe-max-size for unprivileged users) also works.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, CHUNK);
        Ok(Pipe(read, write))
    }

    /// Back to the pool; only ever called on an empty pipe.
    fn give(self) {
        PIPES.with_borrow_mut(|pool| {
            if pool.len() < POOL {
                pool.push(self);
            }
        });
    }
}

/// Splice both ways (the `replayed` bytes already sent upstream) until
/// both directions are done, nothing moves for `idle`, or `force_close`.
pub(crate) async fn run(
    client: TcpStream,
    upstream: TcpStream,
    replayed: usize,
    idle: Duration,
    force_close: &CancellationToken,
) -> Report {
    let meter = Meter {
        start: Instant::now(),
        activity: AtomicU64::new(0),
        first_eof: AtomicU8::new(NO_EOF),
    };
    let (up, down) = (AtomicU64::new(replayed as u64), AtomicU64::new(0));
    let both = async {
        tokio::try_join!(
            one_way(&client, &upstream, &up, &meter, CLIENT),
            one_way(&upstream, &client, &down, &meter, UPSTREAM),
        )
    };
    let end = tokio::select! {
        result = both => match (result, meter.first_eof.load(Ordering::Relaxed)) {
            (Ok(_), UPSTREAM) => End::UpstreamClose,
            (Ok(_), _) => End::ClientClose,
            (Err(Failed(CLIENT, error)), _) => failed(CLIENT, &error, &upstream),
            (Err(Failed(_, error)), _) => failed(UPSTREAM, &error, &client),
        },
        () = idle_watch(&meter.activity, meter.start, idle) => End::IdleTimeout,
        () = force_close.cancelled() => End::Shutdown,
    };
    Report {
        up: up.into_inner(),
        down: down.into_inner(),
        end,
    }
}

/// What both directions note: the last activity and who reached EOF first.
struct Meter {
    start: Instant,
    activity: AtomicU64,
    first_eof: AtomicU8,
}

/// A direction stopped on an error: the side whose socket failed.
struct Failed(u8, io::Error);

/// `from` (the `side` end) → `to` until `from` ends; then `to`'s write half
/// is shut down.
async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    bytes: &AtomicU64,
    meter: &Meter,
    side: u8,
) -> Result<(), Failed> {
    let other = other(side);
    let reading = |error| Failed(side, error);
    let writing = |error| Failed(other, error);
    loop {
        // Readiness alone spends no tokio budget: a transfer where neither
        // side ever blocks must still let the rest of the worker run.
        tokio::task::consume_budget().await;
        from.readable().await.map_err(reading)?;
        let Ok(pipe) = Pipe::take() else {
            // Out of descriptors (or pipe pages) for a moment: this chunk is
            // copied instead, so an established connection never fails on it.
            // Boxed: rare, and its buffer and waits would otherwise be
            // carried by every spliced connection while it idles.
            if !Box::pin(copy_chunk(from, to, bytes, meter, side)).await? {
                ended(to, meter, side);
                return Ok(());
            }
            continue;
        };
        let read = from.try_io(Interest::READABLE, || {
            Ok(splice(from, None, &pipe.1, None, CHUNK, flags())?)
        });
        let n = match read {
            Ok(0) => {
                pipe.give();
                ended(to, meter, side);
                return Ok(());
            }
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                pipe.give();
                continue;
            }
            Err(error) => return Err(reading(error)),
        };
        // On an error the pipe may hold bytes: it is closed, not pooled.
        let mut left = n;
        while left > 0 {
            to.writable().await.map_err(writing)?;
            match to.try_io(Interest::WRITABLE, || {
                Ok(splice(&pipe.0, None, to, None, left, flags())?)
            }) {
                Ok(m) => {
                    left -= m;
                    meter.moved(bytes, m);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(writing(error)),
            }
        }
        pipe.give();
    }
}

/// One chunk through a buffer, for when no pipe can be had; `false` at EOF.
async fn copy_chunk(
    from: &TcpStream,
    to: &TcpStream,
    bytes: &AtomicU64,
    meter: &Meter,
    side: u8,
) -> Result<bool, Failed> {
    let other = other(side);
    let mut buffer = vec![0u8; 16 * 1024];
    let n = match from.try_read(&mut buffer) {
        Ok(0) => return Ok(false),
        Ok(n) => n,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(true),
        Err(error) => return Err(Failed(side, error)),
    };
    let mut sent = 0;
    while sent < n {
        to.writable().await.map_err(|e| Failed(other, e))?;
        match to.try_write(&buffer[sent..n]) {
            Ok(m) => {
                sent += m;
                meter.moved(bytes, m);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(Failed(other, error)),
        }
    }
    Ok(true)
}

/// `from` reached EOF: note who closed first and pass the FIN on.
fn ended(to: &TcpStream, meter: &Meter, side: u8) {
    let first =
        meter
            .first_eof
            .compare_exchange(NO_EOF, side, Ordering::Relaxed, Ordering::Relaxed);
    // Half-close: pass the FIN on while the other direction still runs. When
    // that one has ended already, both sockets close at once, which sends the
    // FIN anyway: one syscall fewer. A peer that is already gone makes
    // shutdown fail; the other direction sees that for itself.
    if first.is_ok() {
        let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
    }
}

impl Meter {
    /// `n` bytes were delivered: count them and stamp the activity (per
    /// write, so a slow reader of a large chunk is not taken for idle).
    fn moved(&self, bytes: &AtomicU64, n: usize) {
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(millis, Ordering::Relaxed);
    }
}

fn flags() -> SpliceFlags {
    SpliceFlags::MOVE | SpliceFlags::NONBLOCK
}
