//! Initial packet protection, removed with rustls's `quic` module: its
//! `Keys::initial` is RFC 9001 §5.2's key schedule (with RFC 9369's v2
//! salt and labels) and ring does header protection and AES-128-GCM. No
//! cryptography is written here, only where the RFC says each piece lies.

use rustls::Side;
use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
use rustls::quic::{DirectionalKeys, Keys};

use super::QuicError;
use super::header::{QuicVersion, decode_packet_number};

/// Header protection samples 16 bytes starting 4 bytes after the start of
/// the Packet Number field, whatever its real length (RFC 9001 §5.4.2).
pub(super) const SAMPLE_OFFSET: usize = 4;
/// Reserved Bits of a long header's first byte: zero once unprotected.
const RESERVED_BITS: u8 = 0x0c;

/// The client's Initial keys for one Destination Connection ID.
pub(super) struct InitialKeys {
    client: DirectionalKeys,
}

impl std::fmt::Debug for InitialKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Public values, but nothing a log line needs.
        f.write_str("InitialKeys(..)")
    }
}

/// Both directions' Initial keys for the client's first Destination
/// Connection ID `dcid`, as `side` sees them: `local` seals what `side`
/// sends, `remote` opens what it receives.
pub(super) fn initial_keys(version: QuicVersion, dcid: &[u8], side: Side) -> Option<Keys> {
    // Initials always use TLS_AES_128_GCM_SHA256 (RFC 9001 §5.2). ring's
    // suite always carries its QUIC algorithm; `None` cannot happen.
    let suite = TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())?;
    Some(suite.keys(dcid, side, version.rustls()))
}

/// An Initial with protection removed.
pub(super) struct Opened<'p> {
    pub(super) packet_number: u64,
    /// The frames.
    pub(super) payload: &'p [u8],
}

impl InitialKeys {
    /// Derive them from the client's first Destination Connection ID.
    pub(super) fn new(version: QuicVersion, dcid: &[u8]) -> Result<Self, QuicError> {
        // As the server, "remote" is the client's direction.
        let keys = initial_keys(version, dcid, Side::Server).ok_or(QuicError::DecryptFailed)?;
        Ok(Self {
            client: keys.remote,
        })
    }

    /// Remove header protection, then decrypt, in place. `packet` is the
    /// whole packet (its Length honoured), `pn_offset` where its Packet
    /// Number starts; `largest` the largest packet number read before,
    /// which decoding the truncated number needs (RFC 9000 §17.1).
    pub(super) fn open<'p>(
        &self,
        packet: &'p mut [u8],
        pn_offset: usize,
        largest: Option<u64>,
    ) -> Result<Opened<'p>, QuicError> {
        const SHORT: QuicError =
            QuicError::BadHeader("packet too short for its header protection sample");
        let sample_start = pn_offset.checked_add(SAMPLE_OFFSET).ok_or(SHORT)?;
        let sample_len = self.client.header.sample_len();
        let (head, tail) = packet.split_at_mut_checked(sample_start).ok_or(SHORT)?;
        let sample = tail.get(..sample_len).ok_or(SHORT)?;
        let (first, rest) = head.split_first_mut().ok_or(SHORT)?;
        // The field may be 1 to 4 bytes: rustls unmasks only as many as the
        // unprotected first byte says.
        let pn_field = rest.get_mut(pn_offset.saturating_sub(1)..).ok_or(SHORT)?;
        self.client
            .header
            .decrypt_in_place(sample, first, pn_field)
            .map_err(|_| QuicError::DecryptFailed)?;
        let first = *first;
        let pn_len = usize::from(first & 0x03) + 1;
        let pn_end = pn_offset + pn_len;
        let truncated = packet
            .get(pn_offset..pn_end)
            .ok_or(SHORT)?
            .iter()
            .fold(0u64, |n, b| (n << 8) | u64::from(*b));
        let packet_number = decode_packet_number(largest, truncated, pn_len);
        let (header, body) = packet.split_at_mut_checked(pn_end).ok_or(SHORT)?;
        let payload = self
            .client
            .packet
            .decrypt_in_place(packet_number, header, body)
            .map_err(|_| QuicError::DecryptFailed)?;
        // Checked only now: before the AEAD passed, set bits could be a
        // forgery's, not the client's (RFC 9000 §17.2).
        if first & RESERVED_BITS != 0 {
            return Err(QuicError::BadHeader("reserved bits are set"));
        }
        Ok(Opened {
            packet_number,
            payload,
        })
    }
}
