//! A health check any QUIC server answers without keeping state: a
//! datagram in a version no one speaks (RFC 9000 §15: versions of the form
//! 0x?a?a?a?a are reserved to exercise negotiation) makes a server reply
//! with Version Negotiation (§6.1, §17.2.1) listing the versions it does.
//! A reply proves a QUIC server listens; nothing is decrypted or kept.

use super::MIN_DATAGRAM;
use super::header::{LONG_FORM, MAX_CID_LEN};

/// A reserved version (RFC 9000 §15), never one a server supports.
const PROBE_VERSION: u32 = 0x1a2a_3a4a;

/// The probe: a long header in [`PROBE_VERSION`] with `dcid` and `scid`
/// (each at most 20 bytes), padded to the 1200 bytes below which a server
/// may stay silent (§14.1). `None` if an ID is too long.
pub fn version_probe(dcid: &[u8], scid: &[u8]) -> Option<Vec<u8>> {
    if dcid.len() > MAX_CID_LEN || scid.len() > MAX_CID_LEN {
        return None;
    }
    let mut probe = Vec::with_capacity(MIN_DATAGRAM);
    // Long header with the fixed bit; the type bits mean nothing in an
    // unknown version.
    probe.push(LONG_FORM | 0x40);
    probe.extend_from_slice(&PROBE_VERSION.to_be_bytes());
    probe.push(dcid.len() as u8);
    probe.extend_from_slice(dcid);
    probe.push(scid.len() as u8);
    probe.extend_from_slice(scid);
    probe.resize(MIN_DATAGRAM, 0);
    Some(probe)
}

/// Whether `reply` is the Version Negotiation answering the probe sent
/// with `dcid` and `scid`: version 0, the IDs swapped (§17.2.1), and at
/// least one version listed.
pub fn is_version_negotiation(reply: &[u8], dcid: &[u8], scid: &[u8]) -> bool {
    let Some((&first, rest)) = reply.split_first() else {
        return false;
    };
    if first & LONG_FORM == 0 || rest.get(..4) != Some(&[0, 0, 0, 0][..]) {
        return false;
    }
    let rest = &rest[4..];
    let Some((their_dcid, rest)) = id(rest) else {
        return false;
    };
    let Some((their_scid, versions)) = id(rest) else {
        return false;
    };
    their_dcid == scid && their_scid == dcid && !versions.is_empty() && versions.len() % 4 == 0
}

/// A length-prefixed connection ID and what follows it.
fn id(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    Some((rest.get(..len)?, rest.get(len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_1200_bytes_in_a_reserved_version() {
        let probe = version_probe(&[1; 8], &[2; 8]).unwrap();
        assert_eq!(probe.len(), 1200);
        assert_eq!(probe[1..5], [0x1a, 0x2a, 0x3a, 0x4a]);
        assert!(version_probe(&[0; 21], &[]).is_none());
    }

    #[test]
    fn only_the_matching_version_negotiation_counts() {
        let (dcid, scid) = ([1u8; 8], [2u8; 4]);
        let mut vn = vec![0x80, 0, 0, 0, 0, 4];
        vn.extend_from_slice(&scid);
        vn.push(8);
        vn.extend_from_slice(&dcid);
        vn.extend_from_slice(&[0, 0, 0, 1]);
        assert!(is_version_negotiation(&vn, &dcid, &scid));
        // IDs not swapped back, no version, or not version 0.
        assert!(!is_version_negotiation(&vn, &scid, &dcid));
        assert!(!is_version_negotiation(&vn[..vn.len() - 4], &dcid, &scid));
        let mut v1 = vn.clone();
        v1[4] = 1;
        assert!(!is_version_negotiation(&v1, &dcid, &scid));
        assert!(!is_version_negotiation(&[], &dcid, &scid));
    }
}
