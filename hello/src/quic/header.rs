//! QUIC long headers (RFC 9000 §17.2; RFC 9369 §3.2 for v2's type bits):
//! what a router reads in the clear before any decryption.

use super::QuicError;
use super::cursor::Cursor;

/// Version 1, RFC 9000.
const V1: u32 = 0x0000_0001;
/// Version 2, RFC 9369.
const V2: u32 = 0x6b33_43cf;
/// Header Form bit: 1 for a long header.
pub(super) const LONG_FORM: u8 = 0x80;
/// Fixed Bit: 1 in every valid v1 and v2 packet (RFC 9000 §17.2).
pub(super) const FIXED_BIT: u8 = 0x40;
/// Longest connection ID in v1 and v2 (RFC 9000 §17.2).
pub(super) const MAX_CID_LEN: usize = 20;

/// A QUIC version whose Initial packets can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuicVersion {
    /// QUIC version 1 (`0x00000001`, RFC 9000).
    V1,
    /// QUIC version 2 (`0x6b3343cf`, RFC 9369): v1 with other type bits,
    /// salt and key labels, against ossification.
    V2,
}

impl QuicVersion {
    /// The version number as on the wire.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => V1,
            Self::V2 => V2,
        }
    }

    fn from_number(number: u32) -> Option<Self> {
        match number {
            V1 => Some(Self::V1),
            V2 => Some(Self::V2),
            _ => None,
        }
    }

    /// rustls's name for it: its key schedule holds each version's salt
    /// and HKDF labels.
    pub(super) fn rustls(self) -> rustls::quic::Version {
        match self {
            Self::V1 => rustls::quic::Version::V1,
            Self::V2 => rustls::quic::Version::V2,
        }
    }

    /// The Long Packet Type bits (0x30) of `kind`'s first byte, as a
    /// server writing its own long header needs them: the inverse of
    /// `packet_type`.
    pub(super) fn type_bits(self, kind: PacketType) -> u8 {
        let v1_code = match kind {
            PacketType::Initial => 0,
            PacketType::ZeroRtt => 1,
            PacketType::Handshake => 2,
            PacketType::Retry => 3,
        };
        let code = match self {
            Self::V1 => v1_code,
            Self::V2 => (v1_code + 1) & 0x03,
        };
        code << 4
    }

    /// The packet type of a long header's first byte (bits 0x30).
    fn packet_type(self, first: u8) -> PacketType {
        let bits = (first >> 4) & 0x03;
        // v2 rotated the codes by one so middleboxes cannot ossify on v1's.
        let v1_code = match self {
            Self::V1 => bits,
            Self::V2 => bits.wrapping_sub(1) & 0x03,
        };
        match v1_code {
            0 => PacketType::Initial,
            1 => PacketType::ZeroRtt,
            2 => PacketType::Handshake,
            _ => PacketType::Retry,
        }
    }
}

/// Long header packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PacketType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

/// The clear fields of one long-header packet (not Retry: it has no Length).
#[derive(Debug)]
pub(super) struct LongHeader<'a> {
    pub(super) kind: PacketType,
    pub(super) dcid: &'a [u8],
    pub(super) scid: &'a [u8],
    /// Where the (protected) Packet Number field starts in the packet.
    pub(super) pn_offset: usize,
    /// The whole packet's size: header, packet number and payload.
    pub(super) len: usize,
}

/// What the first bytes say before anything else is parsed: `None` when
/// `bytes` does not start with a long header (a short header, or the
/// zero padding after the last packet), else its version and type.
pub(super) fn peek(bytes: &[u8]) -> Result<Option<(QuicVersion, PacketType)>, QuicError> {
    let mut c = Cursor::new(bytes);
    let first = c.u8().ok_or(QuicError::BadHeader("empty packet"))?;
    if first & LONG_FORM == 0 {
        return Ok(None);
    }
    let number = c.u32().ok_or(QuicError::BadHeader("version truncated"))?;
    let version = QuicVersion::from_number(number).ok_or(QuicError::UnsupportedVersion(number))?;
    Ok(Some((version, version.packet_type(first))))
}

/// Parse the long header at the start of `bytes` (the rest of a datagram);
/// the packet ends where its Length field says, which must lie within
/// `bytes`. Retry packets are refused: they carry no Length.
pub(super) fn parse(bytes: &[u8]) -> Result<LongHeader<'_>, QuicError> {
    let Some((_, kind)) = peek(bytes)? else {
        return Err(QuicError::NotInitial);
    };
    let mut c = Cursor::new(bytes);
    let first = c.u8().unwrap_or_default();
    let _version = c.u32();
    if first & FIXED_BIT == 0 {
        return Err(QuicError::BadHeader("fixed bit is zero"));
    }
    if kind == PacketType::Retry {
        return Err(QuicError::NotInitial);
    }
    let dcid = connection_id(&mut c)?;
    let scid = connection_id(&mut c)?;
    if kind == PacketType::Initial {
        let token_len = c
            .varint_len()
            .ok_or(QuicError::BadHeader("token length truncated"))?;
        c.take(token_len)
            .ok_or(QuicError::BadHeader("token overruns the datagram"))?;
    }
    let length = c
        .varint_len()
        .ok_or(QuicError::BadHeader("Length truncated"))?;
    let pn_offset = c.pos();
    let len = pn_offset
        .checked_add(length)
        .filter(|end| *end <= bytes.len())
        .ok_or(QuicError::BadHeader("Length overruns the datagram"))?;
    Ok(LongHeader {
        kind,
        dcid,
        scid,
        pn_offset,
        len,
    })
}

fn connection_id<'a>(c: &mut Cursor<'a>) -> Result<&'a [u8], QuicError> {
    let len = c
        .u8()
        .ok_or(QuicError::BadHeader("connection ID length truncated"))?;
    if usize::from(len) > MAX_CID_LEN {
        return Err(QuicError::BadHeader("connection ID longer than 20 bytes"));
    }
    c.take(usize::from(len))
        .ok_or(QuicError::BadHeader("connection ID truncated"))
}

/// The full packet number from its `pn_len`-byte truncation, given the
/// largest one read so far (RFC 9000 §A.3). With none read yet the
/// expected number is 0 and the truncated value is the number.
pub(super) fn decode_packet_number(largest: Option<u64>, truncated: u64, pn_len: usize) -> u64 {
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let bits = (pn_len.clamp(1, 4) * 8) as u32;
    let window = 1u64 << bits;
    let half = window / 2;
    let candidate = (expected & !(window - 1)) | truncated;
    if candidate.saturating_add(half) <= expected && candidate < (1u64 << 62) - window {
        candidate + window
    } else if candidate > expected.saturating_add(half) && candidate >= window {
        candidate - window
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_numbers_decode_as_rfc_9000_appendix_a_3_shows() {
        // RFC 9000 §A.3's example: largest 0xa82f30ea, 2-byte 0x9b32.
        assert_eq!(
            decode_packet_number(Some(0xa82f_30ea), 0x9b32, 2),
            0xa82f_9b32
        );
        assert_eq!(decode_packet_number(None, 2, 4), 2);
        assert_eq!(decode_packet_number(Some(6), 0xff, 1), 0xff);
        assert_eq!(decode_packet_number(Some(300), 0x01, 1), 257);
    }

    #[test]
    fn v2_rotates_the_type_bits() {
        assert_eq!(QuicVersion::V1.packet_type(0xc0), PacketType::Initial);
        assert_eq!(QuicVersion::V2.packet_type(0xd0), PacketType::Initial);
        assert_eq!(QuicVersion::V2.packet_type(0xe0), PacketType::ZeroRtt);
        assert_eq!(QuicVersion::V2.packet_type(0xf0), PacketType::Handshake);
        assert_eq!(QuicVersion::V2.packet_type(0xc0), PacketType::Retry);
    }

    #[test]
    fn type_bits_invert_packet_type() {
        use PacketType::*;
        for version in [QuicVersion::V1, QuicVersion::V2] {
            for kind in [Initial, ZeroRtt, Handshake, Retry] {
                let first = LONG_FORM | FIXED_BIT | version.type_bits(kind);
                assert_eq!(version.packet_type(first), kind, "{version:?}");
            }
        }
        assert_eq!(QuicVersion::V1.type_bits(Initial), 0x00);
        assert_eq!(QuicVersion::V2.type_bits(Initial), 0x10);
    }
}
