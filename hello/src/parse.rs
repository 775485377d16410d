//! ClientHello body parsing: tls-parser for the fixed fields, our own walk
//! over the extension block, and decoders for the few extensions we read.
//!
//! The extension block is walked here rather than with
//! `tls_parser::parse_tls_client_hello_extensions` because that parser fails
//! the whole list when one extension's content is odd (e.g. a non-empty
//! extended_master_secret), and a router must not refuse a client for an
//! extension it never looks at.

use tls_parser::{
    TlsExtension, parse_tls_extension_alpn_content, parse_tls_extension_elliptic_curves_content,
    parse_tls_extension_signature_algorithms_content, parse_tls_handshake_client_hello,
};

use super::HelloError;

/// The fields of a ClientHello we keep, borrowing from the message.
pub(crate) struct ClientHelloParts<'a> {
    pub(crate) legacy_version: u16,
    pub(crate) cipher_suites: Vec<u16>,
    /// Every extension in wire order, GREASE and unknown codepoints included,
    /// so fingerprints can later be computed from the same walk.
    pub(crate) extensions: Vec<RawExtension<'a>>,
}

/// One extension as it appeared on the wire.
#[derive(Clone, Copy)]
pub(crate) struct RawExtension<'a> {
    pub(crate) kind: u16,
    pub(crate) data: &'a [u8],
}

/// Parse a whole ClientHello handshake message (4-byte header included).
pub(crate) fn client_hello(message: &[u8]) -> Result<ClientHelloParts<'_>, HelloError> {
    let (header, body) = message
        .split_at_checked(4)
        .ok_or(HelloError::Malformed("handshake header truncated"))?;
    match header {
        [1, a, b, c] if u32::from_be_bytes([0, *a, *b, *c]) as usize == body.len() => {}
        _ => {
            return Err(HelloError::Malformed(
                "not a ClientHello of the framed length",
            ));
        }
    }
    // `parse_tls_message_handshake` would do the header too, but it drops
    // whatever follows the parsed fields, and trailing bytes must be refused.
    let (rest, hello) = parse_tls_handshake_client_hello(body)
        .map_err(|_| HelloError::Malformed("ClientHello fields overrun the message"))?;
    if !rest.is_empty() {
        // tls-parser reads the extension block as optional, so a block whose
        // length overruns the message comes back unread rather than an error.
        return Err(HelloError::Malformed(match hello.ext {
            Some(_) => "trailing bytes after the extensions",
            None => "extensions block length does not match the message",
        }));
    }
    Ok(ClientHelloParts {
        legacy_version: hello.version.0,
        cipher_suites: hello.ciphers.iter().map(|c| c.0).collect(),
        extensions: hello.ext.map(extensions).transpose()?.unwrap_or_default(),
    })
}

/// Split the extension block into (type, data) pairs without judging the
/// contents; only framing faults and repeated types are refused (RFC 8446
/// 4.2: a repeated extension type is an illegal_parameter).
fn extensions(mut block: &[u8]) -> Result<Vec<RawExtension<'_>>, HelloError> {
    let mut out = Vec::new();
    while !block.is_empty() {
        let mut r = Reader(block);
        let kind = r
            .u16()
            .ok_or(HelloError::Malformed("extension header truncated"))?;
        let data = r.vec16().ok_or(HelloError::Malformed(
            "extension overruns the extensions block",
        ))?;
        out.push(RawExtension { kind, data });
        block = r.0;
    }
    // Sorting a copy keeps this O(n log n) even for a hello stuffed with
    // thousands of empty extensions.
    let mut kinds: Vec<u16> = out.iter().map(|e| e.kind).collect();
    kinds.sort_unstable();
    if kinds.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(HelloError::Malformed("duplicate extension type"));
    }
    Ok(out)
}

// Decoders for the extensions the summary reads. Shared rule: a zero-length
// body reads as an empty list. Such hellos are not RFC-valid, but s2n's JA4
// tests send them and expect a fingerprint, and routing them costs nothing.
// A non-empty body must be exactly one well-formed list.

/// signature_algorithms (13), via tls-parser's content parser.
pub(crate) fn signature_algorithms(data: &[u8]) -> Result<Vec<u16>, HelloError> {
    const BAD: HelloError = HelloError::Malformed("bad signature_algorithms extension");
    if data.is_empty() {
        return Ok(Vec::new());
    }
    match parse_tls_extension_signature_algorithms_content(data) {
        // tls-parser silently drops an odd last byte, so check the count.
        Ok(([], TlsExtension::SignatureAlgorithms(v))) if 2 + 2 * v.len() == data.len() => Ok(v),
        _ => Err(BAD),
    }
}

/// supported_groups (10), via tls-parser's elliptic_curves content parser.
pub(crate) fn supported_groups(data: &[u8]) -> Result<Vec<u16>, HelloError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    match parse_tls_extension_elliptic_curves_content(data) {
        Ok(([], TlsExtension::EllipticCurves(v))) => Ok(v.iter().map(|g| g.0).collect()),
        _ => Err(HelloError::Malformed("bad supported_groups extension")),
    }
}

/// application_layer_protocol_negotiation (16), via tls-parser. Names must
/// be non-empty (RFC 7301 3.1): policies match on them, and an empty name
/// would be indistinguishable from "no ALPN".
pub(crate) fn alpn(data: &[u8]) -> Result<Vec<Vec<u8>>, HelloError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let names = match parse_tls_extension_alpn_content(data) {
        Ok(([], TlsExtension::ALPN(v))) => v,
        _ => return Err(HelloError::Malformed("bad ALPN extension")),
    };
    // tls-parser stops at the first name that overruns; check all were read.
    if 2 + names.iter().map(|n| 1 + n.len()).sum::<usize>() != data.len() {
        return Err(HelloError::Malformed("bad ALPN extension"));
    }
    if names.iter().any(|n| n.is_empty()) {
        return Err(HelloError::Malformed("empty ALPN protocol name"));
    }
    Ok(names.into_iter().map(<[u8]>::to_vec).collect())
}

/// supported_versions (43), parsed here: tls-parser's content parser for it
/// is private and its public wrapper reads a 2-byte body as the ServerHello
/// form.
pub(crate) fn supported_versions(data: &[u8]) -> Result<Vec<u16>, HelloError> {
    const BAD: HelloError = HelloError::Malformed("bad supported_versions extension");
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader(data);
    let list = r.vec8().filter(|_| r.0.is_empty()).ok_or(BAD)?;
    u16_pairs(list).ok_or(BAD)
}

/// key_share (51): the groups of the offered shares, parsed here because
/// tls-parser only hands back the raw extension body.
pub(crate) fn key_share_groups(data: &[u8]) -> Result<Vec<u16>, HelloError> {
    const BAD: HelloError = HelloError::Malformed("bad key_share extension");
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16().filter(|_| outer.0.is_empty()).ok_or(BAD)?);
    let mut groups = Vec::new();
    while !list.0.is_empty() {
        groups.push(list.u16().ok_or(BAD)?);
        list.vec16().ok_or(BAD)?;
    }
    Ok(groups)
}

/// ec_point_formats (11): the format codes, for JA3. Only a fingerprint
/// input, so a body that does not parse gives an empty list rather than
/// refusing a hello that routes fine.
pub(crate) fn ec_point_formats(data: &[u8]) -> Vec<u8> {
    let mut r = Reader(data);
    r.vec8()
        .filter(|_| r.0.is_empty())
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// A list of big-endian u16s filling `list` exactly.
fn u16_pairs(list: &[u8]) -> Option<Vec<u16>> {
    let (pairs, []) = list.as_chunks::<2>() else {
        return None;
    };
    Some(pairs.iter().map(|p| u16::from_be_bytes(*p)).collect())
}

/// A minimal cursor for the length-prefixed vectors of the TLS presentation
/// language; every read returns `None` instead of running past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let (pair, rest) = self.0.split_first_chunk::<2>()?;
        self.0 = rest;
        Some(u16::from_be_bytes(*pair))
    }

    /// An opaque vector with a one-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// An opaque vector with a two-byte length prefix.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}
