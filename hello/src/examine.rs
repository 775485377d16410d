//! The one rule from bytes to a hello: frame, then parse once whole. The
//! connection's reader, `limen explain`, `limen test` and the self-test all
//! call [`examine`], so none of them can accept a hello another refuses.

use super::{HelloError, HelloSummary, Progress, frame};

/// What the bytes read from a new connection so far amount to.
// Made once per connection and taken apart at once: boxing the hello
// would add an allocation to every connection to save a move.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Examined {
    /// A whole ClientHello, parsed.
    Hello(HelloSummary),
    /// The first byte is not a TLS handshake record: the policy decides
    /// with no hello.
    NotTls,
    /// A strict prefix of a ClientHello: read more (live) or give up (offline).
    NeedMore,
}

impl Examined {
    /// What an offline caller says of [`Examined::NeedMore`].
    pub const INCOMPLETE: &'static str =
        "the hello is incomplete (limen would wait, then time out)";
}

/// Frame `bytes` (at most `cap` of them may hold the hello) and, once a
/// whole ClientHello is buffered, parse it. An error is final: no more bytes
/// can make these a usable hello.
pub fn examine(bytes: &[u8], cap: usize) -> Result<Examined, HelloError> {
    Ok(match frame(bytes, cap)? {
        Progress::NeedMore => Examined::NeedMore,
        Progress::NotTls => Examined::NotTls,
        Progress::Complete(framed) => Examined::Hello(HelloSummary::parse(&framed)?),
    })
}
