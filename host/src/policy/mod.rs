//! The routing policy: a sandboxed Wasm component. All of wasmtime lives here.
//!
//! `engine` holds the process-wide compiler (`deadline` times calls), `load`
//! makes a policy ready (`cache` keeps compiled code on disk, `selftest`
//! runs the expected decisions, `version` names the result), `runtime`
//! holds a loaded policy with its warm instances, `state` what an instance
//! can reach, `client_hello` the getters of the hello it reads, `convert`
//! the mapping between WIT and host types. `limit_table` keeps the rate
//! buckets and concurrency slots policies use (host state, bounded);
//! `settings` is what the plane is configured with; `offline` decides and
//! plans one connection without a socket, for the offline tools.

mod bindings;
mod cache;
mod client_hello;
mod convert;
mod deadline;
mod engine;
mod error;
pub mod limit_table;
mod load;
mod offline;
mod output;
mod runtime;
mod selftest;
mod settings;
mod state;
mod version;

use std::net::SocketAddr;
use std::sync::Arc;

pub use cache::{CompiledFrom, ComponentCache};
pub use engine::PolicyEngine;
pub use error::{CallError, Failure, LoadError};
pub use load::{INTERFACE_VERSION, LoadReport, MAX_MODULE_BYTES, Module};
pub use offline::{Offline, decide_offline};
pub(crate) use runtime::bind_thread;
pub use runtime::{Policy, Verdict};
pub use settings::{Expectation, FailMode, INIT_BUDGET_FACTOR, PolicyConfig};
pub use version::{ModuleHash, PolicyVersion};

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
