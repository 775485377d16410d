//! The routing policy: a sandboxed Wasm component. All of wasmtime lives here.
//!
//! `engine` holds the process-wide compiler and epoch ticker, `runtime` a
//! loaded policy with its warm instances, `state` what an instance can reach,
//! `convert` the mapping between WIT and host types.

mod bindings;
mod convert;
mod engine;
mod error;
mod output;
mod runtime;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

pub use engine::PolicyEngine;
pub use error::PolicyError;
pub use runtime::{Policy, Verdict};

/// What the policy learns about a connection besides its ClientHello.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client's address.
    pub client: SocketAddr,
    /// The local address it connected to.
    pub local: SocketAddr,
    /// The listener's configured name.
    pub listener: Arc<str>,
}
