//! ClientHello handling without I/O, limen's `hello` layer: find one
//! complete ClientHello in the bytes read from a new connection, then parse
//! it into a [`HelloSummary`] for the policy.
//!
//! A crate of its own so it can be fuzzed (`cargo xtask fuzz`) and reused
//! without tokio, wasmtime or rustls; limen sees it as `limen::hello`.
//!
//! Framing and parsing are separate steps on purpose: the reader calls
//! [`frame`] after every read and only pays for parsing once.

mod error; // HelloError, the layer's one error type
mod examine; // bytes → hello / not TLS / need more: the one rule every caller uses
mod fingerprint; // JA3 and JA4 from the summary's fields
mod parse; // ClientHello fields via tls-parser, extension walk and list decoders
mod record; // record reassembly: is a whole ClientHello buffered yet?
mod sni; // server_name extension to a validated, normalised DnsName
mod summary; // HelloSummary, the owned, validated result

pub use error::HelloError;
pub use examine::{Examined, examine};
pub use fingerprint::Fingerprints;
pub use record::{Framed, Progress, frame};
/// The one normalisation of host names (SNI, upstreams, allow rules).
pub use sni::normalise as normalise_name;
pub use summary::HelloSummary;

#[cfg(test)]
mod tests;
