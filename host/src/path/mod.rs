//! The per-connection path: a worker accepts a connection, admits it under
//! the listener's pending-hello budget, peeks its ClientHello, has the
//! policy decide, and carries the decision out. Nothing here changes what
//! another connection sees; everything it reads comes from `state`.

pub mod worker;

/// The accept loop of one listener.
pub(crate) mod accept;

/// The pending-hello budget a listener admits connections under.
pub(crate) mod admission;

/// Reading the ClientHello off the socket without forwarding it.
pub(crate) mod peek;

/// One connection's typestate: accepted, peeked, decided; its access log trail.
pub(crate) mod connection;

/// Carrying out decisions: passthrough, terminate and reject.
pub(crate) mod action;

/// QUIC listeners: Initials read, decided, flows relayed.
pub(crate) mod quic;

/// A candidate's decisions on live traffic, compared off the path.
pub(crate) mod shadow;
