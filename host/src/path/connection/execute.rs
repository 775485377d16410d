//! The last stage of a connection: hand the decided action to its owner in
//! `action/`, which does the I/O, and note how it ended.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::trail::Trail;
use super::{Context, Decided};
use crate::decision::UpstreamAddr;
use crate::hello::HelloSummary;
use crate::observe::access;
use crate::outcome::{End, Stage};
use crate::path::action::Action;
use crate::path::action::{Notes, Scope, connect, passthrough, reject, terminate};
use crate::policy::Connection;
use crate::state::live::Generation;

impl Decided {
    /// Carry out the action; note how it ended.
    // Not an `async fn`: its `self` (232 bytes) would be kept in every
    // established connection's task beside the parts the body moves out
    // of it.
    pub(super) fn execute(self, cx: &Context, trail: &mut Trail) -> impl Future<Output = ()> {
        let Decided {
            stream,
            mut active,
            bytes,
            action,
            held,
        } = self;
        async move {
            let (moved, end) = match action {
                Action::Reject(alert) => {
                    active.enter(Stage::Reject);
                    reject::refuse(trail, stream, alert).await
                }
                Action::Challenge { challenge, hello } => {
                    active.enter(Stage::Terminate);
                    let answer =
                        super::challenge::answer(cx, trail, stream, bytes, (challenge, &hello));
                    Box::pin(answer).await
                }
                Action::Unreachable(error) => {
                    connect::unreachable(cx, trail, stream, &error, None).await
                }
                Action::Passthrough { upstream, dest } => {
                    active.enter(Stage::Passthrough);
                    passthrough::run(cx, trail, stream, &upstream, &dest, bytes).await
                }
                Action::Terminate {
                    terminate,
                    config,
                    hello,
                    dest,
                } => {
                    active.enter(Stage::Terminate);
                    let planned = (&*terminate, config, &*hello, &dest);
                    let listener = active.metrics();
                    // Boxed: a TLS session's state is large, and a future is as
                    // large as its largest stage, which every passthrough
                    // connection would otherwise carry from accept.
                    Box::pin(terminate::run(cx, trail, listener, stream, bytes, planned)).await
                }
            };
            trail.ended(moved, end);
            drop(held);
        }
    }
}

/// The actions read the connection from its context.
impl Scope for Context {
    fn generation(&self) -> &Generation {
        &self.generation
    }

    fn conn(&self) -> &Connection {
        &self.conn
    }

    fn force_close(&self) -> &CancellationToken {
        &self.force_close
    }
}

/// The actions note what they do on the trail.
impl Notes for Trail {
    fn hello(&self) -> Option<&HelloSummary> {
        Trail::hello(self).map(|hello| &**hello)
    }

    fn acting(&mut self, action: access::ActionTaken, upstream: Option<UpstreamAddr>) {
        Trail::acting(self, action, upstream);
    }

    fn connected(&mut self, took: Duration) {
        Trail::connected(self, took);
    }

    fn hello_read(&mut self, generation: &Generation) {
        Trail::hello_read(self, generation);
    }

    fn ended(&mut self, moved: (u64, u64), end: End) {
        Trail::ended(self, moved, end);
    }
}
