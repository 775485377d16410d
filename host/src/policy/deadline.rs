//! A guest call's wall-clock deadline, checked without a timer thread.
//!
//! A computing guest yields every `YIELD_EVERY` units of fuel (see
//! `engine`); each yield comes back through [`Deadline::poll`], which reads
//! the clock (a vDSO call, no syscall) and ends the call once it is late. A
//! guest blocked in a WASI call does not yield: the tokio timer around the
//! call bounds that case. Dropping the call's future abandons the guest
//! mid-call; its instance is then dropped, never reused.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// `inner`, or `Err(Late)` at the first poll after `at`.
pub(super) struct Deadline<F> {
    inner: F,
    at: Instant,
    /// The first poll follows the clock read that set `at`: no need to
    /// read it again (most calls end in that poll).
    polled: bool,
}

/// The deadline passed while the guest ran.
pub(super) struct Late;

impl<F> Deadline<F> {
    pub(super) fn new(inner: F, at: Instant) -> Deadline<F> {
        Deadline {
            inner,
            at,
            polled: false,
        }
    }
}

impl<F: Future + Unpin> Future for Deadline<F> {
    type Output = Result<F::Output, Late>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polled && Instant::now() >= self.at {
            return Poll::Ready(Err(Late));
        }
        self.polled = true;
        Pin::new(&mut self.inner).poll(cx).map(Ok)
    }
}
