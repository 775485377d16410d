//! ClientHello handling without I/O, limen's `hello` layer: find one
//! complete ClientHello in the bytes read from a new connection (TLS
//! records over TCP, or QUIC Initial datagrams: [`InitialReader`]), then
//! parse it into a [`HelloSummary`] for the policy.
//!
//! A crate of its own so it can be fuzzed (`cargo xtask fuzz`) and reused
//! without tokio or wasmtime; of rustls it uses only the QUIC initial key
//! schedule. limen sees it as `limen::hello`.
//!
//! Framing and parsing are separate steps on purpose: the reader calls
//! [`frame`] after every read and only pays for parsing once.

mod error; // HelloError, the TLS hello's error type (QUIC datagrams: QuicError)
mod examine; // bytes → hello / not TLS / need more: the one rule every caller uses
mod fingerprint; // JA3 and JA4 from the summary's fields
mod lists; // the summary's lists: codepoints in one allocation, ALPN names as sent
mod parse; // ClientHello fields, extension walk and list decoders, allocation-free
mod quic; // QUIC client Initials: decrypt, frames, CRYPTO reassembly
mod record; // record reassembly: is a whole ClientHello buffered yet?
mod sni; // server_name extension to a validated, normalised DnsName
mod summary; // HelloSummary, the owned, validated result
mod transport; // Transport: TCP or QUIC

pub use error::HelloError;
pub use examine::{Examined, examine};
pub use fingerprint::Fingerprints;
pub use lists::Alpn;
pub use quic::{
    InitialReader, MIN_DATAGRAM, QuicError, QuicProgress, QuicVersion, close_initial,
    destination_id, is_version_negotiation, long_header_scid, version_probe,
};
pub use record::{Framed, Progress, frame};
/// The one normalisation of host names (SNI, upstreams, allow rules).
pub use sni::normalise as normalise_name;
pub use summary::HelloSummary;
pub use transport::Transport;

#[cfg(test)]
mod tests;
