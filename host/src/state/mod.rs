//! What connections read: the validated configuration, the certificates,
//! and the live snapshot that pairs a configuration generation with its
//! policy. Built and swapped by `control`; read lock-free by `path`.

/// Settings and limits, validated before anything runs.
pub mod config;

/// Certificates for `terminate`, and trust for re-encrypted upstreams.
pub mod tls;

/// One configuration generation, made ready.
pub(crate) mod generation;

/// The live state: configuration generation and policy, swapped whole.
pub(crate) mod live;

/// A candidate policy on trial beside the live one (shadowed).
pub(crate) mod trial;
