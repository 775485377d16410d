//! The server_name extension (RFC 6066 3), reduced to the one name a router
//! can match on.

use super::HelloError;
use super::parse::Reader;
use rustls_pki_types::DnsName;

/// RFC 6066's NameType for a DNS host name, the only one defined.
const HOST_NAME: u8 = 0;

/// The first host_name of a server_name extension.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerName {
    /// A valid DNS name, normalised.
    Dns(DnsName<'static>),
    /// Something else, as sent (non-UTF-8 bytes replaced): an IP literal,
    /// bad characters.
    Other(Box<str>),
    /// No host_name entry.
    Absent,
}

/// Decode the server_name extension body and return its first host_name
/// entry.
///
/// The list itself must be well formed (a router that misread it could route
/// on the wrong name), but a name that is not a usable DNS name (an IP
/// literal, which RFC 6066 forbids here, an empty or non-ASCII name) yields
/// `None`: the client is routed as one without SNI rather than refused.
pub(crate) fn server_name(data: &[u8]) -> Result<ServerName, HelloError> {
    const BAD: HelloError = HelloError::Malformed("bad server_name extension");
    // An empty body is legal from servers and harmless from clients.
    if data.is_empty() {
        return Ok(ServerName::Absent);
    }
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16().filter(|_| outer.0.is_empty()).ok_or(BAD)?);
    // Every entry must be well framed, not only the first host_name.
    let mut first = None;
    while !list.0.is_empty() {
        let kind = list.u8().ok_or(BAD)?;
        let name = list.vec16().ok_or(BAD)?;
        if kind == HOST_NAME && first.is_none() {
            first = Some(name);
        }
    }
    let Some(sent) = first else {
        return Ok(ServerName::Absent);
    };
    Ok(match normalise(sent) {
        Some(name) => ServerName::Dns(name),
        None => ServerName::Other(String::from_utf8_lossy(sent).into()),
    })
}

/// Lower-case and drop one trailing dot, so `Example.COM.` and `example.com`
/// route alike; `None` unless the rest is a valid DNS name.
pub fn normalise(name: &[u8]) -> Option<DnsName<'static>> {
    let name = std::str::from_utf8(name).ok()?;
    let name = name.strip_suffix('.').unwrap_or(name);
    // DnsName accepts one trailing dot itself, so "a.test.." would otherwise
    // come out as "a.test." and never match a route.
    if name.ends_with('.') {
        return None;
    }
    // DnsName refuses names whose last label is all digits, which is what
    // keeps IPv4 literals out; IPv6 literals fail on ':'.
    DnsName::try_from_str(name)
        .ok()
        .map(|n| n.to_lowercase_owned())
}
