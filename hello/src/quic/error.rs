//! The one error type of QUIC Initial reading.
//!
//! Its own enum rather than more [`HelloError`](crate::HelloError) variants:
//! every `HelloError` ends the wait for a hello, while most of these only
//! refuse one datagram (a stray, a 0-RTT packet to hold, a forgery) and leave
//! the reader as it was. [`QuicError::is_final`] tells the two apart.

/// Why a datagram, or the whole first flight, cannot give a ClientHello.
///
/// Unless [`is_final`](Self::is_final) says otherwise, the datagram is
/// refused and the reader is left exactly as it was before it: the host may
/// drop the datagram (or hold it for replay) and keep waiting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// The datagram is under the 1,200 bytes RFC 9000 §14.1 requires of a
    /// datagram carrying a client Initial; a server must discard it (the
    /// rule that caps what an unvalidated address can make a server send).
    #[error("datagram shorter than 1200 bytes")]
    ShortDatagram,
    /// The first packet is not an Initial: a short header, or a long header
    /// of another type (0-RTT, Handshake, Retry). A client's 0-RTT-only
    /// datagram lands here; the host may hold it for replay.
    #[error("first packet is not an Initial")]
    NotInitial,
    /// A long header of a QUIC version we cannot read (neither v1 nor v2).
    #[error("unsupported QUIC version {0:#010x}")]
    UnsupportedVersion(u32),
    /// The long header breaks RFC 9000 §17.2 (fixed bit, connection ID
    /// length, a Length overrunning the datagram); the string names the rule.
    #[error("malformed long header: {0}")]
    BadHeader(&'static str),
    /// Header protection or AEAD failed with the initial keys of the
    /// packet's Destination Connection ID: corrupted, or not an Initial.
    #[error("Initial packet does not decrypt")]
    DecryptFailed,
    /// The decrypted payload breaks the frame grammar, or holds a frame an
    /// Initial may not carry (RFC 9000 §12.4, §17.2.2).
    #[error("bad frame in Initial: {0}")]
    BadFrame(&'static str),
    /// The datagram's Initial has another Destination Connection ID (or
    /// version) than the first datagram the reader accepted: another
    /// connection's, so it is not read.
    #[error("Initial for another connection (DCID or version differs)")]
    DcidMismatch,
    /// The client sent CONNECTION_CLOSE in an Initial: it gave up, and no
    /// hello will follow on this connection ID.
    #[error("client closed the connection")]
    ClientClosed,
    /// Final. CRYPTO data differs from bytes already held for the same
    /// offsets (RFC 9000 §2.2 lets a receiver treat it as a violation).
    #[error("CRYPTO data conflicts with data already received")]
    ConflictingCrypto,
    /// Final. CRYPTO data, or the ClientHello's declared length, reaches
    /// past the cap.
    #[error("ClientHello does not fit in the read cap")]
    TooLarge,
    /// Final. The CRYPTO stream has more separate pieces with gaps between
    /// them than the reader holds (see `assemble.rs`).
    #[error("CRYPTO stream too fragmented")]
    TooFragmented,
    /// Final. The first handshake message is not a ClientHello.
    #[error("first handshake message is not a ClientHello")]
    NotClientHello,
}

impl QuicError {
    /// A short, stable label for metrics (`reason=...`), like
    /// [`HelloError::reason`](crate::HelloError::reason).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ShortDatagram => "short_datagram",
            Self::NotInitial => "not_initial",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::BadHeader(_) => "bad_header",
            Self::DecryptFailed => "decrypt_failed",
            Self::BadFrame(_) => "bad_frame",
            Self::DcidMismatch => "dcid_mismatch",
            Self::ClientClosed => "client_closed",
            Self::ConflictingCrypto => "conflicting_crypto",
            Self::TooLarge => "too_large",
            Self::TooFragmented => "too_fragmented",
            Self::NotClientHello => "not_client_hello",
        }
    }

    /// Whether the reader is done: it answers this same error to every later
    /// datagram. The others refuse only the datagram at hand.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::ConflictingCrypto | Self::TooLarge | Self::TooFragmented | Self::NotClientHello
        )
    }
}
