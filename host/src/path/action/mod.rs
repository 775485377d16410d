//! Carrying out a decision: pass through, terminate, or reject; and the
//! copy loop the first two end in. Each action owns its I/O from the
//! decided connection to its last byte; `connection/` hands it over and
//! records what it returns.

pub(crate) mod connect;
mod first;
pub(crate) mod passthrough;
pub(crate) mod pipe;
pub(crate) mod proxy_header;
pub(crate) mod reject;
pub(crate) mod replay;
#[cfg(target_os = "linux")]
pub(crate) mod splice;
pub(crate) mod terminate;

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;

use tokio_util::sync::CancellationToken;

use crate::decision::{Alert, Terminate, Upstream, UpstreamAddr};
use crate::hello::HelloSummary;
use crate::observe::access;
use crate::outcome::End;
use crate::policy::Connection;
use crate::state::live::Generation;
use crate::upstream::{Dest, UpstreamError};

/// What to do with a connection (or flow), as decided.
pub(crate) enum Action {
    Passthrough {
        upstream: Upstream,
        dest: Dest,
    },
    /// Carries the hello it answers: a terminate without one cannot exist.
    Terminate {
        /// Boxed: the largest variant, carried by every connection's task
        /// (passthroughs included) if it were inline.
        terminate: Box<Terminate>,
        config: Arc<ServerConfig>,
        hello: Arc<HelloSummary>,
        dest: Dest,
    },
    Reject(Alert),
    /// A TLS-ALPN-01 validation connection, answered by limen itself.
    Challenge {
        challenge: crate::state::tls::Challenge,
        hello: Arc<HelloSummary>,
    },
    /// The upstream's name did not resolve (or the fallback's was refused):
    /// not the policy's fault, so no fail mode; the client gets a bare close.
    Unreachable(UpstreamError),
}

/// Bytes each way and how the connection ended.
pub(crate) type Ended = ((u64, u64), End);

/// What an action reads of its connection: who it is, the configuration
/// generation it was accepted under, and the shutdown's force-close.
/// The context in `connection/` implements it: an action carries one
/// reference to it, as it did when it lived there.
pub(crate) trait Scope {
    /// The configuration generation the connection was accepted under.
    fn generation(&self) -> &Generation;
    /// Who the connection is.
    fn conn(&self) -> &Connection;
    /// Cancelled when the shutdown's grace period is over.
    fn force_close(&self) -> &CancellationToken;
}

/// What an action notes for the connection's access log line, as it
/// happens (a shutdown may cut the action short; what was noted stays).
/// The trail in `connection/` implements it: the actions sit below it.
pub(crate) trait Notes {
    /// The ClientHello, if there was one and it is still kept.
    fn hello(&self) -> Option<&HelloSummary>;
    /// What limen is doing with the connection, and where to.
    fn acting(&mut self, action: access::ActionTaken, upstream: Option<UpstreamAddr>);
    /// The upstream connected after `took`.
    fn connected(&mut self, took: Duration);
    /// The action has read what it needs of the hello.
    fn hello_read(&mut self, generation: &Generation);
    /// The connection is over (noted before a linger, which a shutdown may
    /// cut).
    fn ended(&mut self, moved: (u64, u64), end: End);
}
