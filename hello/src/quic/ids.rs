//! Connection IDs read from the parts of a QUIC packet every version
//! leaves in the clear (RFC 8999, the invariants): what a router needs to
//! follow a connection whose client changed address. No decryption.

use super::header::{LONG_FORM, MAX_CID_LEN};

/// The Source Connection ID of a long-header packet (a server's Initial or
/// Handshake names there the ID its client will address it by), or `None`
/// for a short header, a Version Negotiation (whose SCID is the client's
/// own) or a truncated packet.
pub fn long_header_scid(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.get(1..5) == Some(&[0, 0, 0, 0][..]) {
        return None;
    }
    let (_, rest) = long_header_dcid(datagram)?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    (len <= MAX_CID_LEN).then(|| rest.get(..len)).flatten()
}

/// The Destination Connection ID of a long-header packet, and what
/// follows it.
fn long_header_dcid(datagram: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = datagram.split_first()?;
    if first & LONG_FORM == 0 {
        return None;
    }
    let rest = rest.get(4..)?; // the version
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if len > MAX_CID_LEN {
        return None;
    }
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// The Destination Connection ID a client's packet is addressed by, when
/// its length is `len` (a short header does not say; the router knows the
/// lengths its servers chose): after the first byte of a short header, or
/// the long header's own.
pub fn destination_id(datagram: &[u8], len: usize) -> Option<&[u8]> {
    let first = *datagram.first()?;
    if first & LONG_FORM != 0 {
        return long_header_dcid(datagram).map(|(dcid, _)| dcid);
    }
    datagram.get(1..1 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_clear_header() {
        // A v1 long header: DCID 0102, SCID aabbcc.
        let long = [0xc0, 0, 0, 0, 1, 2, 1, 2, 3, 0xaa, 0xbb, 0xcc, 0];
        assert_eq!(long_header_scid(&long), Some(&[0xaa, 0xbb, 0xcc][..]));
        assert_eq!(destination_id(&long, 8), Some(&[1, 2][..]));
        let short = [0x40, 9, 8, 7, 6, 5];
        assert_eq!(destination_id(&short, 3), Some(&[9, 8, 7][..]));
        assert_eq!(long_header_scid(&short), None);
        assert_eq!(destination_id(&short, 9), None);
        assert_eq!(long_header_scid(&[0xc0, 0, 0]), None);
        assert_eq!(long_header_scid(&[0xc0, 0, 0, 0, 1, 30]), None);
        let negotiation = [0x80, 0, 0, 0, 0, 1, 2, 1, 3, 0, 0, 0, 1];
        assert_eq!(long_header_scid(&negotiation), None);
    }
}
