//! The server_name extension (RFC 6066 3), reduced to the one name a router
//! can match on.

use rustls_pki_types::DnsName;
use tls_parser::{SNIType, TlsExtension, parse_tls_extension_sni_content};

use super::HelloError;

/// Decode the server_name extension body (via tls-parser) and return its
/// first host_name entry as a normalised DNS name.
///
/// The list itself must be well formed (a router that misread it could route
/// on the wrong name), but a name that is not a usable DNS name (an IP
/// literal, which RFC 6066 forbids here, an empty or non-ASCII name) yields
/// `None`: the client is routed as one without SNI rather than refused.
pub(crate) fn server_name(data: &[u8]) -> Result<Option<DnsName<'static>>, HelloError> {
    const BAD: HelloError = HelloError::Malformed("bad server_name extension");
    let entries = match parse_tls_extension_sni_content(data) {
        // An empty body is legal from servers and harmless from clients.
        Ok(([], TlsExtension::SNI(v))) => v,
        _ => return Err(BAD),
    };
    // tls-parser stops at the first entry that overruns the list; check that
    // every byte was accounted for.
    let used: usize = entries.iter().map(|(_, name)| 3 + name.len()).sum();
    if !data.is_empty() && used + 2 != data.len() {
        return Err(BAD);
    }
    Ok(entries
        .iter()
        .find(|(kind, _)| *kind == SNIType::HostName)
        .and_then(|(_, name)| normalise(name)))
}

/// Lower-case and drop one trailing dot, so `Example.COM.` and `example.com`
/// route alike; `None` unless the rest is a valid DNS name.
pub(crate) fn normalise(name: &[u8]) -> Option<DnsName<'static>> {
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
