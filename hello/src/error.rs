//! The one error type of the `hello` layer.

/// Why the bytes read so far can never become a usable ClientHello.
///
/// Every variant ends the wait for a hello: the caller stops reading and
/// applies its policy for broken or oversized hellos. "Not TLS at all" is not
/// an error (see [`Progress::NotTls`](super::Progress::NotTls)) because plain
/// protocols are a legitimate input for the policy to route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloError {
    /// The ClientHello, with the record headers needed to carry it, cannot fit
    /// in the read cap. Reported as soon as the declared length shows it, so a
    /// client cannot make us buffer up to the cap for a hello we would refuse.
    #[error("ClientHello does not fit in the read cap")]
    TooLarge,
    /// The bytes start like a TLS handshake but break the record or
    /// ClientHello grammar; the string names the first rule broken.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

impl HelloError {
    /// A short, stable label for metrics (`hello_errors{reason=...}`), so
    /// dashboards don't depend on the wording of the Display text.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
        }
    }
}
