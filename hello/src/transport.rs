//! Which transport carried a ClientHello.

use serde::Serialize;

/// How the client reached limen: the policy may route the two differently,
/// and fingerprints mark them (JA4's first character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Transport {
    /// TLS over TCP: the hello came in TLS records.
    Tcp,
    /// QUIC (v1 or v2): the hello came in CRYPTO frames of Initial packets.
    Quic,
}

impl Transport {
    /// `"tcp"` or `"quic"`, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Quic => "quic",
        }
    }

    /// For serde: the summary's JSON names the transport only for QUIC, so
    /// what `limen explain` printed for TCP hellos stays as it was.
    pub(crate) fn is_tcp(&self) -> bool {
        *self == Self::Tcp
    }
}
