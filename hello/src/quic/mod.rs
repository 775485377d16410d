//! QUIC client Initials, read without I/O: the same ClientHello a TCP
//! client sends, carried in CRYPTO frames of Initial packets whose keys
//! anyone can derive from the client's Destination Connection ID (RFC 9001
//! §5.2), so a router can read it without terminating anything.
//!
//! Datagram → long headers (`header`) → header protection and AEAD
//! removed with rustls's initial keys (`keys`) → frames (`frames`) →
//! the CRYPTO stream reassembled by offset (`assemble`) → a [`Framed`]
//! ClientHello that [`HelloSummary::parse`](crate::HelloSummary::parse)
//! reads as it reads a TCP one. [`InitialReader`] drives it, one datagram
//! at a time, in any order. [`close_initial`] builds the answer that
//! refuses one.
//!
//! [`Framed`]: crate::Framed

mod assemble; // the CRYPTO stream by offset: order, retransmissions, caps
mod close; // the reject answer: a server Initial with CONNECTION_CLOSE
mod cursor; // bytes and QUIC varints
mod error; // QuicError, with its metric reasons
mod frames; // the frames an Initial may carry
mod header; // long headers, v1 and v2, and packet numbers
mod ids; // connection IDs from the clear header, to follow a moved client
mod keys; // initial keys (rustls): header protection and AEAD removed
mod probe; // a health check: Version Negotiation asked for and recognised
mod reader; // InitialReader, the state machine a host feeds

pub use close::close_initial;
pub use error::QuicError;
pub use header::QuicVersion;
pub use ids::{destination_id, long_header_scid};
pub use probe::{is_version_negotiation, version_probe};
pub use reader::{InitialReader, QuicProgress};

/// A datagram carrying a client Initial is at least this long (RFC 9000
/// §14.1): the padding that caps what a server may send to an address it
/// has not validated.
pub const MIN_DATAGRAM: usize = 1200;

#[cfg(test)]
mod tests;
