//! Carrying out a decision: pass through, or reject.
//!
//! `terminate` arrives with the certificate store; until then the connection
//! driver treats it as a refused decision.

pub(crate) mod passthrough;
pub(crate) mod proxy_header;
pub(crate) mod reject;
