//! ClientHello body parsing, our own and allocation-free: the fixed fields,
//! a walk over the extension block, and decoders for the few extensions we
//! read, each appending to the summary's one list of codepoints.
//!
//! Written here rather than with tls-parser: that crate fails the whole
//! extension list when one extension's content is odd (e.g. a non-empty
//! extended_master_secret), and a router must not refuse a client for an
//! extension it never looks at; it also returned a `Vec` per field, about
//! twenty allocations per connection for lists the summary copies anyway.

use super::HelloError;

/// The fields of a ClientHello we keep, borrowing from the message.
pub(crate) struct ClientHelloParts<'a> {
    pub(crate) legacy_version: u16,
    /// cipher_suites as sent: big-endian pairs, an even length.
    pub(crate) cipher_suites: &'a [u8],
    /// Every extension in wire order, GREASE and unknown codepoints included,
    /// its framing checked and no type repeated.
    pub(crate) extensions: Extensions<'a>,
}

/// One extension as it appeared on the wire.
#[derive(Clone, Copy)]
pub(crate) struct RawExtension<'a> {
    pub(crate) kind: u16,
    pub(crate) data: &'a [u8],
}

/// An extension block whose framing [`client_hello`] checked.
#[derive(Clone, Copy)]
pub(crate) struct Extensions<'a> {
    block: &'a [u8],
    count: usize,
    most_codes: usize,
}

impl<'a> Extensions<'a> {
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// How many codepoints the lists the summary decodes from these
    /// extensions can hold, at most: what it reserves before decoding.
    pub(crate) fn most_codes(&self) -> usize {
        self.most_codes
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = RawExtension<'a>> + use<'a> {
        let mut r = Reader(self.block);
        std::iter::from_fn(move || {
            let kind = r.u16()?;
            Some(RawExtension {
                kind,
                data: r.vec16()?,
            })
        })
    }
}

const FIELDS_OVERRUN: HelloError = HelloError::Malformed("ClientHello fields overrun the message");

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
    let mut r = Reader(body);
    let legacy_version = r.u16().ok_or(FIELDS_OVERRUN)?;
    r.take(32).ok_or(FIELDS_OVERRUN)?; // random
    r.vec8().filter(|id| id.len() <= 32).ok_or(FIELDS_OVERRUN)?; // legacy_session_id
    let cipher_suites = r
        .vec16()
        .filter(|s| s.len() % 2 == 0)
        .ok_or(FIELDS_OVERRUN)?;
    r.vec8().ok_or(FIELDS_OVERRUN)?; // legacy_compression_methods
    // The extension block is optional (a bare SSL 3.0-style hello); when
    // present it must fill the rest of the message exactly.
    let block = if r.0.is_empty() {
        &[][..]
    } else {
        let block = r.vec16().ok_or(HelloError::Malformed(
            "extensions block length does not match the message",
        ))?;
        if !r.0.is_empty() {
            return Err(HelloError::Malformed("trailing bytes after the extensions"));
        }
        block
    };
    Ok(ClientHelloParts {
        legacy_version,
        cipher_suites,
        extensions: extensions(block)?,
    })
}

/// Check the extension block's framing without judging the contents; only
/// framing faults and repeated types are refused (RFC 8446 4.2: a repeated
/// extension type is an illegal_parameter).
fn extensions(block: &[u8]) -> Result<Extensions<'_>, HelloError> {
    // Real hellos carry 10 to 25 extensions: their types are sorted on the
    // stack. Sorting (not comparing pairs) keeps a hello stuffed with
    // thousands of empty extensions O(n log n).
    const ON_STACK: usize = 48;
    let mut stack = [0u16; ON_STACK];
    let mut heap = Vec::new();
    let (mut count, mut most_codes) = (0, 0);
    let mut r = Reader(block);
    while !r.0.is_empty() {
        let kind = r
            .u16()
            .ok_or(HelloError::Malformed("extension header truncated"))?;
        let data = r.vec16().ok_or(HelloError::Malformed(
            "extension overruns the extensions block",
        ))?;
        most_codes += codes_in(kind, data);
        if count < ON_STACK {
            stack[count] = kind;
        } else {
            if heap.is_empty() {
                heap.extend_from_slice(&stack);
            }
            heap.push(kind);
        }
        count += 1;
    }
    let kinds = if count <= ON_STACK {
        &mut stack[..count]
    } else {
        &mut heap[..]
    };
    kinds.sort_unstable();
    if kinds.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(HelloError::Malformed("duplicate extension type"));
    }
    Ok(Extensions {
        block,
        count,
        most_codes,
    })
}

// Decoders for the extensions the summary reads, each appending its list to
// `out`. Shared rule: a zero-length body reads as an empty list. Such hellos
// are not RFC-valid, but s2n's JA4 tests send them and expect a
// fingerprint, and routing them costs nothing. A non-empty body must be
// exactly one well-formed list.

/// How many codepoints the decoders below can append for this extension's
/// body, at most; none for the extensions the summary keeps no list of.
fn codes_in(kind: u16, data: &[u8]) -> usize {
    match kind {
        ext::SUPPORTED_VERSIONS | ext::SUPPORTED_GROUPS | ext::SIGNATURE_ALGORITHMS => {
            data.len() / 2
        }
        // One code per share, and a share is at least 4 bytes: a
        // post-quantum share (1,200 bytes) must not reserve 600.
        ext::KEY_SHARE => data.len() / 4,
        ext::EC_POINT_FORMATS => data.len(),
        _ => 0,
    }
}

/// Extension codepoints the summary reads.
pub(crate) mod ext {
    pub(crate) const SERVER_NAME: u16 = 0x0000;
    pub(crate) const SUPPORTED_GROUPS: u16 = 0x000a;
    pub(crate) const EC_POINT_FORMATS: u16 = 0x000b;
    pub(crate) const SIGNATURE_ALGORITHMS: u16 = 0x000d;
    pub(crate) const ALPN: u16 = 0x0010;
    pub(crate) const SUPPORTED_VERSIONS: u16 = 0x002b;
    pub(crate) const KEY_SHARE: u16 = 0x0033;
    pub(crate) const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
    /// The withdrawn ESNI drafts' encrypted_server_name.
    pub(crate) const ENCRYPTED_SERVER_NAME: u16 = 0xffce;
}

/// signature_algorithms (13) and supported_groups (10): a two-byte-length
/// list of codes.
pub(crate) fn codes16(
    data: &[u8],
    out: &mut Vec<u16>,
    bad: &'static str,
) -> Result<(), HelloError> {
    if data.is_empty() {
        return Ok(());
    }
    let mut r = Reader(data);
    let list = r.vec16().filter(|_| r.0.is_empty());
    push_pairs(list.ok_or(HelloError::Malformed(bad))?, out).ok_or(HelloError::Malformed(bad))
}

/// supported_versions (43), the ClientHello form: a one-byte-length list.
pub(crate) fn supported_versions(data: &[u8], out: &mut Vec<u16>) -> Result<(), HelloError> {
    const BAD: HelloError = HelloError::Malformed("bad supported_versions extension");
    if data.is_empty() {
        return Ok(());
    }
    let mut r = Reader(data);
    let list = r.vec8().filter(|_| r.0.is_empty()).ok_or(BAD)?;
    push_pairs(list, out).ok_or(BAD)
}

/// key_share (51): the groups of the offered shares.
pub(crate) fn key_share_groups(data: &[u8], out: &mut Vec<u16>) -> Result<(), HelloError> {
    const BAD: HelloError = HelloError::Malformed("bad key_share extension");
    if data.is_empty() {
        return Ok(());
    }
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16().filter(|_| outer.0.is_empty()).ok_or(BAD)?);
    while !list.0.is_empty() {
        out.push(list.u16().ok_or(BAD)?);
        list.vec16().ok_or(BAD)?;
    }
    Ok(())
}

/// ec_point_formats (11): the format codes, for JA3. Only a fingerprint
/// input, so a body that does not parse gives an empty list rather than
/// refusing a hello that routes fine.
pub(crate) fn ec_point_formats(data: &[u8]) -> &[u8] {
    let mut r = Reader(data);
    r.vec8().filter(|_| r.0.is_empty()).unwrap_or_default()
}

/// application_layer_protocol_negotiation (16): the name list (its length
/// prefix removed) and how many names it holds. Names must be non-empty
/// (RFC 7301 3.1): policies match on them, and an empty name would be
/// indistinguishable from "no ALPN".
pub(crate) fn alpn(data: &[u8]) -> Result<(&[u8], usize), HelloError> {
    const BAD: HelloError = HelloError::Malformed("bad ALPN extension");
    if data.is_empty() {
        return Ok((&[], 0));
    }
    let mut outer = Reader(data);
    let list = outer.vec16().filter(|_| outer.0.is_empty()).ok_or(BAD)?;
    let mut names = Reader(list);
    let mut count = 0;
    let mut empty = false;
    while !names.0.is_empty() {
        empty |= names.vec8().ok_or(BAD)?.is_empty();
        count += 1;
    }
    if empty {
        return Err(HelloError::Malformed("empty ALPN protocol name"));
    }
    Ok((list, count))
}

/// Append the big-endian u16s filling `list` exactly.
fn push_pairs(list: &[u8], out: &mut Vec<u16>) -> Option<()> {
    let (pairs, []) = list.as_chunks::<2>() else {
        return None;
    };
    out.extend(pairs.iter().map(|p| u16::from_be_bytes(*p)));
    Some(())
}

/// A minimal cursor for the length-prefixed vectors of the TLS presentation
/// language; every read returns `None` instead of running past the end.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        let (pair, rest) = self.0.split_first_chunk::<2>()?;
        self.0 = rest;
        Some(u16::from_be_bytes(*pair))
    }

    /// An opaque vector with a one-byte length prefix.
    pub(crate) fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// An opaque vector with a two-byte length prefix.
    pub(crate) fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}
