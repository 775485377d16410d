//! limen's `reject` answer to a QUIC client: one server Initial carrying a
//! CONNECTION_CLOSE whose error code is the TLS alert as a CRYPTO_ERROR
//! (RFC 9001 §4.8: 0x0100 + alert), so the client fails at once instead of
//! retransmitting until its handshake times out (RFC 9000 §10.2.3).
//!
//! Built without I/O or state, sealed with rustls's server-side initial
//! keys (RFC 9001 §5.2, §5.4): the same schedule `keys` opens the client's
//! Initials with, from the other side. No cryptography is written here.

use rustls::Side;

use super::header::{FIXED_BIT, LONG_FORM, MAX_CID_LEN, PacketType, QuicVersion};
use super::keys::{SAMPLE_OFFSET, initial_keys};

/// CONNECTION_CLOSE of the transport (RFC 9000 §19.19). 0x1d, the
/// application's, is not allowed in an Initial (§17.2.2).
const CONNECTION_CLOSE: u8 = 0x1c;
/// CRYPTO_ERROR's range starts here; the low byte is the TLS alert (RFC
/// 9001 §4.8, RFC 9000 §20.1).
const CRYPTO_ERROR: u16 = 0x0100;
/// The frame that triggered the error: the ClientHello came in CRYPTO
/// frames (RFC 9000 §19.6).
const CRYPTO_FRAME: u8 = 0x06;
/// PADDING frames, to reach the header-protection sample (RFC 9000 §19.1).
const PADDING: u8 = 0x00;
/// Our first packet in the Initial space is number 0 (RFC 9000 §12.3),
/// which one byte encodes; a longer field would only cost bytes.
const PACKET_NUMBER: u64 = 0;
const PN_LEN: usize = 1;

/// One UDP datagram holding a server Initial that closes the connection
/// the client began with Destination Connection ID `original_dcid`, with
/// error code CRYPTO_ERROR + `alert` (e.g. unrecognized_name 112 gives
/// 0x170). `client_scid` is the Source Connection ID of the client's
/// Initial, which the answer must be addressed to (RFC 9000 §7.2).
///
/// The server's Source Connection ID is `original_dcid` itself. RFC 9000
/// §7.2 lets a server choose any value; echoing this one needs no
/// randomness and no state (the crate has neither), gives a retransmitted
/// client Initial the very same answer, and tells an observer nothing: the
/// client chose it, and both Initials carry it in the clear anyway. §5.1's
/// rule against correlatable IDs guards migration, and this connection
/// ends with this packet.
///
/// `None` when the datagram would exceed `max_len` (pass 3x the bytes
/// received from the client: an address not yet validated may be sent no
/// more, RFC 9000 §8.1) or a connection ID is longer than 20 bytes.
pub fn close_initial(
    version: QuicVersion,
    original_dcid: &[u8],
    client_scid: &[u8],
    alert: u8,
    max_len: usize,
) -> Option<Vec<u8>> {
    if original_dcid.len() > MAX_CID_LEN || client_scid.len() > MAX_CID_LEN {
        return None;
    }
    // As the server, "local" is the direction we send in.
    let keys = initial_keys(version, original_dcid, Side::Server)?.local;
    let tag_len = keys.packet.tag_len();
    let sample_len = keys.header.sample_len();

    let mut payload = connection_close(alert);
    // The sample is `sample_len` bytes from 4 bytes past the start of the
    // Packet Number field, whatever its length (RFC 9001 §5.4.2); pad the
    // payload until the packet reaches that far. Five bytes of frame and a
    // 16-byte tag already do with AES-GCM, so this only guards the sums.
    let needed = (SAMPLE_OFFSET + sample_len).saturating_sub(PN_LEN + tag_len);
    if payload.len() < needed {
        payload.resize(needed, PADDING);
    }
    // No padding to 1200 bytes: RFC 9000 §14.1 asks it of datagrams with
    // ack-eliciting Initials only, and CONNECTION_CLOSE (like PADDING) is
    // not ack-eliciting (§13.2.1). The smaller answer also stays within
    // the 3x budget of any client datagram a server may accept (>= 1200).

    let first = LONG_FORM | FIXED_BIT | version.type_bits(PacketType::Initial) | (PN_LEN as u8 - 1);
    let mut packet = Vec::with_capacity(64);
    packet.push(first); // Reserved Bits zero (RFC 9000 §17.2)
    packet.extend(version.number().to_be_bytes());
    for cid in [client_scid, original_dcid] {
        packet.push(u8::try_from(cid.len()).ok()?);
        packet.extend(cid);
    }
    // Token Length: a server's Initial carries no token (RFC 9000 §17.2.2).
    put_varint(&mut packet, 0);
    // Length counts the Packet Number field, the payload and the tag.
    put_varint(&mut packet, (PN_LEN + payload.len() + tag_len) as u64);
    let pn_offset = packet.len();
    packet.extend(&PACKET_NUMBER.to_be_bytes()[8 - PN_LEN..]);
    if packet.len() + payload.len() + tag_len > max_len {
        return None;
    }

    // Seal the payload with the header, still unprotected, as associated
    // data (RFC 9001 §5.3); then mask the header with a sample of the
    // ciphertext (§5.4.1).
    let tag = keys
        .packet
        .encrypt_in_place(PACKET_NUMBER, &packet, &mut payload)
        .ok()?;
    packet.extend(&payload);
    packet.extend(tag.as_ref());
    let (head, tail) = packet.split_at_mut_checked(pn_offset + SAMPLE_OFFSET)?;
    let sample = tail.get(..sample_len)?;
    let (first, rest) = head.split_first_mut()?;
    let pn_field = rest.get_mut(pn_offset - 1..)?.get_mut(..PN_LEN)?;
    keys.header.encrypt_in_place(sample, first, pn_field).ok()?;
    Some(packet)
}

/// CONNECTION_CLOSE (0x1c) with CRYPTO_ERROR + `alert`, CRYPTO as the
/// frame type that caused it, and an empty Reason Phrase: the alert says
/// it all, and a reason would tell a refused client about the policy.
fn connection_close(alert: u8) -> Vec<u8> {
    let mut frame = vec![CONNECTION_CLOSE];
    put_varint(&mut frame, u64::from(CRYPTO_ERROR + u16::from(alert)));
    put_varint(&mut frame, u64::from(CRYPTO_FRAME));
    put_varint(&mut frame, 0); // Reason Phrase Length
    frame
}

/// A variable-length integer in its shortest form (RFC 9000 §16). The
/// values written here are all far below 2^30.
fn put_varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..0x40 => out.push(v as u8),
        0x40..0x4000 => out.extend((0x4000 | v as u16).to_be_bytes()),
        0x4000..0x4000_0000 => out.extend((0x8000_0000 | v as u32).to_be_bytes()),
        _ => out.extend((0xc000_0000_0000_0000 | v).to_be_bytes()),
    }
}
