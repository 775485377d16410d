//! limen: a TLS SNI router whose routing policy is a sandboxed WebAssembly
//! component.
//!
//! The modules read in the order a connection travels through them.
#![warn(missing_docs)]

/// The access log: a line per finished connection, written off the data path.
mod access;
/// Carrying out decisions: passthrough and reject.
mod action;
/// `limen test`: tables of cases run against a policy, offline.
pub mod cases;
/// Settings and limits, validated before anything runs.
pub mod config;
/// One connection's typestate: accepted, peeked, decided.
mod connection;
/// Changing a running limen: policy swaps, reloads, the admin endpoint.
pub mod control;
/// What a policy can decide.
pub mod decision;
/// `limen explain`: one decision, offline.
pub mod explain;
/// Framing and parsing the ClientHello, without I/O.
pub mod hello;
/// The accept loop of one listener.
mod listener;
/// Counters.
pub mod metrics;
/// Reading the ClientHello off the socket without forwarding it.
mod peek;
/// The Wasm policy and its sandbox.
pub mod policy;
/// Binding listeners, running until shutdown, draining.
pub mod server;
/// Certificates for `terminate`, and trust for re-encrypted upstreams.
pub mod tls;
/// Resolving, allow-listing and connecting to upstreams.
mod upstream;

pub use config::Config;
pub use server::Server;
