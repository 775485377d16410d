//! limen: a TLS SNI router whose routing policy is a sandboxed WebAssembly
//! component.
//!
//! The crate is laid out by plane, listed here from the top down. A module
//! may import from its own plane and from the planes below it, never from
//! one above (`tests/layers.rs` checks every `crate::` path against this
//! order, and that no folder has a cycle of its own):
//!
//! | rank | plane | what it is |
//! |---:|---|---|
//! | 7 | `control` | what changes a running limen: start and drain, reloads, swaps, the admin endpoint, ACME, the fleet, the status page |
//! | 6 | `offline` | `limen explain` and `limen test`: the same rules, no socket |
//! | 5 | `path` | one connection: workers, accept, admission, peek, decide, the actions |
//! | 4 | `state` | what connections read: configuration, certificates, the live snapshot |
//! | 3 | `upstream` | where bytes go: resolve, connect, pools, re-encryption |
//! | 2 | `policy` | the Wasm sandbox, its host imports, the limits a policy keeps |
//! | 1 | `observe` | metrics, the access log, rate limits on warnings |
//! | 0 | core | `hello`, `decision`, `outcome`, `plan`: deciding, pure |
#![warn(missing_docs)]

// 7: control.
/// Changing a running limen: start and drain, reloads and swaps, the admin
/// endpoint, ACME, the fleet, the status page.
pub mod control;

// 6: offline.
/// The offline tools: `limen explain` and `limen test`.
pub mod offline;

// 5: path.
/// One connection, from accept to its last byte.
pub mod path;

// 4: state.
/// What connections read: settings, certificates, the live snapshot.
pub mod state;

// 3: upstream.
/// Where bytes go: resolving and connecting to upstreams, pools.
mod upstream;

// 2: policy.
/// The Wasm policy and its sandbox.
pub mod policy;

// 1: observe.
/// Metrics, the access log, rate limits for repeated warnings.
pub mod observe;

// 0: core, pure.
/// Framing and parsing the ClientHello, without I/O.
pub mod hello;

/// What a policy can decide.
pub mod decision;

/// Every outcome vocabulary (metric labels, log words), one enum each.
pub mod outcome;

/// From a decision to an action or a refusal: limen's rules, pure.
pub mod plan;

pub use control::server::Server;
pub use state::config::Config;
