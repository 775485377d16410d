//! What a guest writes to stdout or stderr goes to limen's log, one line at a
//! time, instead of nowhere: a Rust guest's panic message lands on stderr just
//! before the trap, and is the best clue to why it trapped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept; the rest of an over-long line is dropped.
const MAX_LINE: usize = 1024;

/// How many more lines the current call may write (logs and output share it).
#[derive(Clone, Default)]
pub(crate) struct LineBudget(Arc<AtomicU32>);

impl LineBudget {
    pub(crate) fn refill(&self, lines: u32) {
        self.0.store(lines, Ordering::Relaxed);
    }

    /// Take one line; the last one announces that the rest are dropped.
    pub(crate) fn take(&self) -> bool {
        let before = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if before == Ok(1) {
            tracing::warn!(target: "limen::policy", "this call's log budget is spent; dropping its further lines");
        }
        before.is_ok_and(|n| n > 1)
    }
}

/// A guest's stdout or stderr.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    stream: Stream,
    budget: LineBudget,
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl GuestOutput {
    pub(crate) fn stdout(budget: LineBudget) -> GuestOutput {
        GuestOutput {
            stream: Stream::Stdout,
            budget,
        }
    }

    pub(crate) fn stderr(budget: LineBudget) -> GuestOutput {
        GuestOutput {
            stream: Stream::Stderr,
            budget,
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger {
            output: self.clone(),
            line: Vec::new(),
        })
    }
}

/// Never blocks and never fails: a guest cannot stall or break limen by writing.
struct LineLogger {
    output: GuestOutput,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end();
        if !text.is_empty() && self.output.budget.take() {
            match self.output.stream {
                // stderr is where guests (and Rust's panic handler) report trouble.
                Stream::Stderr => {
                    tracing::warn!(target: "limen::policy", stream = "stderr", "{text}")
                }
                Stream::Stdout => {
                    tracing::debug!(target: "limen::policy", stream = "stdout", "{text}")
                }
            }
        }
        self.line.clear();
    }
}

#[async_trait::async_trait]
impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let room = MAX_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.ends_with(b"\n") {
                self.emit();
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}
