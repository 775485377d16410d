//! What a guest writes to stdout or stderr goes to limen's log, one line at a
//! time, instead of nowhere: a Rust guest's panic message lands on stderr just
//! before the trap, and is the best clue to why it trapped.

use crate::observe::log_limit::LogLimit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Longest line kept; the rest of an over-long line is dropped.
const MAX_LINE: usize = 1024;

/// How many more lines the current call may write (logs and output share
/// it), and when the call's deadline passes: work a guest makes the host do
/// in a synchronous import (a log line, a write) costs it no fuel, so these
/// imports check the clock themselves and trap a late call.
#[derive(Clone)]
pub(crate) struct LineBudget(Arc<Budget>);

struct Budget {
    lines: AtomicU32,
    /// The deadline, as nanoseconds after `base`.
    deadline: AtomicU64,
    base: Instant,
    /// A call was trapped for lateness (reported as a deadline failure).
    late: AtomicBool,
}

impl Default for LineBudget {
    fn default() -> LineBudget {
        LineBudget(Arc::new(Budget {
            lines: AtomicU32::new(0),
            deadline: AtomicU64::new(u64::MAX),
            base: Instant::now(),
            late: AtomicBool::new(false),
        }))
    }
}

impl LineBudget {
    /// A new call: `lines` to write, until `deadline`.
    pub(crate) fn refill(&self, lines: u32, deadline: Instant) {
        let budget = &self.0;
        budget.lines.store(lines, Ordering::Relaxed);
        let nanos = deadline.saturating_duration_since(budget.base).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        budget.deadline.store(nanos, Ordering::Relaxed);
        budget.late.store(false, Ordering::Relaxed);
    }

    /// Whether the call is past its deadline (and then remember it was).
    pub(crate) fn late(&self) -> bool {
        let budget = &self.0;
        let now = u64::try_from(budget.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let late = now >= budget.deadline.load(Ordering::Relaxed);
        if late {
            budget.late.store(true, Ordering::Relaxed);
        }
        late
    }

    /// Whether an import trapped this call for lateness.
    pub(crate) fn was_late(&self) -> bool {
        self.0.late.load(Ordering::Relaxed)
    }

    /// Take one line; the last one announces that the rest are dropped.
    pub(crate) fn take(&self) -> bool {
        let before = self
            .0
            .lines
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if before == Ok(1) {
            static SPENT: LogLimit = LogLimit::new(1);
            if let Some(suppressed) = SPENT.allow() {
                tracing::warn!(target: "limen::policy", suppressed, "this call's log budget is spent; dropping its further lines");
            }
        }
        if !before.is_ok_and(|n| n > 1) {
            return false;
        }
        // Across calls too: a client driving a path that logs (or traps with
        // a panic message) at thousands of calls a second must not flood
        // the log.
        static LINES: LogLimit = LogLimit::new(GUEST_LINES_PER_SECOND);
        match LINES.allow() {
            None => false,
            Some(0) => true,
            Some(suppressed) => {
                tracing::warn!(
                    target: "limen::policy", suppressed,
                    "policy log lines were dropped (over {GUEST_LINES_PER_SECOND} a second)"
                );
                true
            }
        }
    }
}

/// Guest log lines (all calls, all instances) logged per second at most.
const GUEST_LINES_PER_SECOND: u32 = 20;

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
        if self.output.budget.late() {
            return Err(StreamError::trap("policy missed its deadline"));
        }
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
