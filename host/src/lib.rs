//! limen: a TLS SNI router whose routing policy is a sandboxed WebAssembly
//! component.
//!
//! The data path's modules come first, in the order a connection travels
//! through them; then what they read (the live state, settings,
//! certificates), then what changes and watches them, then the offline tools.
//! Imports only point down this list's layers (checked by `tests/layers.rs`).
#![warn(missing_docs)]

/// Worker threads: one current-thread runtime per core.
pub mod worker;

/// The accept loop of one listener.
mod listener;

/// The pending-hello budget a listener admits connections under.
mod budget;

/// One connection's typestate: accepted, peeked, decided; its access log trail.
mod connection;

/// Reading the ClientHello off the socket without forwarding it.
mod peek;

/// Framing and parsing the ClientHello, without I/O.
pub mod hello;

/// The Wasm policy and its sandbox.
pub mod policy;

/// What a policy can decide.
pub mod decision;

/// From a decision to an action or a refusal: limen's rules, pure.
pub mod plan;

/// Resolving and connecting to upstreams.
mod upstream;

/// Upstream pools: balancing, retries, health checks.
mod pool;

/// Carrying out decisions: passthrough, terminate and reject.
mod action;

// ACME certificates: obtained, renewed, and their challenges answered.
pub mod acme;

// A fleet's policy from etcd: publish, follow, status.
pub mod source;

/// The live state: configuration generation and policy, swapped whole.
mod live;

/// Settings and limits, validated before anything runs.
pub mod config;

/// Certificates for `terminate`, and trust for re-encrypted upstreams.
pub mod tls;

/// Every outcome vocabulary (metric labels, log words), one enum each.
pub mod outcome;

/// Rate limits for repeated warnings.
mod throttle;

/// Limits a policy can use (token buckets, concurrency slots), kept by the host.
pub mod quota;

/// Counters.
pub mod metrics;

/// Giving the heap back to the kernel after a storm of connections.
mod memory;

/// The access log: a line per finished connection, written off the data path.
mod access;

/// The last swaps and reloads, kept for the status page.
mod changes;

/// Changing a running limen: policy swaps, reloads, the admin endpoint.
pub mod control;

/// `/status` and `/status.json`: the operator's page.
mod status;

/// Binding listeners, running until shutdown, draining.
pub mod server;

/// `limen explain`: one decision, offline.
pub mod explain;

/// `limen test`: tables of cases run against a policy, offline.
pub mod cases;

pub use config::Config;
pub use server::Server;
