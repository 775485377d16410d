//! Packets crafted here and sealed with rustls's client keys: CRYPTO
//! frames out of order and across datagrams, coalesced packets, and each
//! way a datagram or a flight is refused.

use super::{CAP, Packet, crypto, datagram, feed_all, hex_file, summary};
use crate::quic::{InitialReader, MIN_DATAGRAM, QuicError, QuicProgress, QuicVersion};

const DCID: &[u8] = &[0xd1; 8];

/// The RFC 9001 sample ClientHello (241 bytes, SNI example.com).
fn hello() -> Vec<u8> {
    hex_file("rfc9001-a2-crypto-frame.hex")[4..].to_vec()
}

/// One padded datagram holding one Initial with `frames`.
fn one(pn: u64, frames: Vec<u8>) -> Vec<u8> {
    Packet::initial(DCID, pn, frames).seal(Some(MIN_DATAGRAM))
}

#[test]
fn crypto_frames_out_of_order_across_datagrams() {
    let m = hello();
    // Three datagrams, sent last part first, each with frames out of order.
    let d1 = one(
        0,
        [
            crypto(200, &m[200..]),
            vec![1, 1],
            crypto(150, &m[150..200]),
        ]
        .concat(),
    );
    let d2 = one(1, [crypto(60, &m[60..150]), vec![1]].concat());
    let d3 = one(2, [crypto(10, &m[10..60]), crypto(0, &m[..10])].concat());
    let mut reader = InitialReader::new(CAP);
    assert_eq!(reader.feed(&d1), Ok(QuicProgress::NeedMore));
    assert_eq!(reader.feed(&d2), Ok(QuicProgress::NeedMore));
    assert_eq!(feed_all(&mut reader, [&d3[..]]), Ok(Some(m.clone())));
    assert_eq!(
        summary(&mut reader).sni().map(AsRef::as_ref),
        Some("example.com")
    );
}

#[test]
fn coalesced_packets_are_read_and_others_skipped() {
    let m = hello();
    for version in [QuicVersion::V1, QuicVersion::V2] {
        let initial = |pn, frames| Packet {
            version,
            ..Packet::initial(DCID, pn, frames)
        };
        let mut zero_rtt = initial(0, vec![0x08, 0, 0, 0]); // a STREAM frame
        zero_rtt.v1_type = 1;
        let mut handshake = initial(0, vec![1]);
        handshake.v1_type = 2;
        // RFC 9000 §12.2: a packet for another DCID in the datagram is ignored.
        let mut stray = initial(3, crypto(0, &[2, 2, 2]));
        stray.dcid = vec![0xee; 8];
        let d = datagram(&[
            initial(0, crypto(100, &m[100..])).seal(None),
            handshake.seal(None),
            initial(1, [vec![1], crypto(0, &m[..100])].concat()).seal(None),
            stray.seal(None),
            zero_rtt.seal(None),
        ]);
        let mut reader = InitialReader::new(CAP);
        assert_eq!(
            feed_all(&mut reader, [&d[..]]),
            Ok(Some(m.clone())),
            "{version:?}"
        );
        assert_eq!(reader.version(), Some(version));
    }
}

#[test]
fn bytes_after_the_last_packet_are_ignored() {
    let m = hello();
    let packet = Packet::initial(DCID, 0, crypto(0, &m)).seal(None);
    // Zero padding (as aioquic sends), or a short-header-like tail.
    for tail in [0x00, 0x40] {
        let mut d = packet.clone();
        d.resize(MIN_DATAGRAM, tail);
        let mut reader = InitialReader::new(CAP);
        assert_eq!(
            feed_all(&mut reader, [&d[..]]),
            Ok(Some(m.clone())),
            "tail {tail:#x}"
        );
    }
}

#[test]
fn a_conflicting_retransmission_is_final() {
    let m = hello();
    let mut other = m[50..120].to_vec();
    other[10] ^= 0xff;
    let mut reader = InitialReader::new(CAP);
    assert_eq!(
        reader.feed(&one(0, crypto(50, &m[50..120]))),
        Ok(QuicProgress::NeedMore)
    );
    let error = reader.feed(&one(1, crypto(40, &[&m[40..50], &other[..]].concat())));
    assert_eq!(error, Err(QuicError::ConflictingCrypto));
    assert!(QuicError::ConflictingCrypto.is_final());
    // Final: the rest of the hello changes nothing.
    assert_eq!(
        reader.feed(&one(2, crypto(0, &m))),
        Err(QuicError::ConflictingCrypto)
    );
}

#[test]
fn the_cap_is_enforced() {
    let m = hello();
    // The declared length is known from the first four bytes.
    let mut reader = InitialReader::new(200);
    assert_eq!(
        reader.feed(&one(0, crypto(0, &m[..4]))),
        Err(QuicError::TooLarge)
    );
    // Data past the cap, before the header is even known.
    let mut reader = InitialReader::new(200);
    assert_eq!(
        reader.feed(&one(0, crypto(190, &m[190..]))),
        Err(QuicError::TooLarge)
    );
    // A hello of exactly the cap fits.
    let mut reader = InitialReader::new(m.len());
    assert_eq!(
        feed_all(&mut reader, [&one(0, crypto(0, &m))[..]]),
        Ok(Some(m))
    );
}

#[test]
fn another_handshake_message_first_is_refused() {
    let mut reader = InitialReader::new(CAP);
    let finished = crypto(0, &[20, 0, 0, 32]);
    assert_eq!(
        reader.feed(&one(0, finished)),
        Err(QuicError::NotClientHello)
    );
}

#[test]
fn too_many_pieces_are_refused() {
    // One-byte frames with one-byte gaps: 65 pieces.
    let frames: Vec<u8> = (0..65u64).flat_map(|i| crypto(10 + 2 * i, &[0])).collect();
    let mut reader = InitialReader::new(CAP);
    assert_eq!(reader.feed(&one(0, frames)), Err(QuicError::TooFragmented));
}

#[test]
fn short_datagrams_are_refused() {
    let m = hello();
    let packet = Packet::initial(DCID, 0, crypto(0, &m)).seal(None);
    assert!(packet.len() < MIN_DATAGRAM);
    let mut reader = InitialReader::new(CAP);
    assert_eq!(reader.feed(&packet), Err(QuicError::ShortDatagram));
    let padded = one(0, crypto(0, &m));
    assert_eq!(
        reader.feed(&padded[..MIN_DATAGRAM - 1]),
        Err(QuicError::ShortDatagram)
    );
    assert_eq!(QuicError::ShortDatagram.reason(), "short_datagram");
    // Nothing was kept: the whole datagram still reads.
    assert_eq!(feed_all(&mut reader, [&padded[..]]), Ok(Some(m)));
}

#[test]
fn other_versions_and_packet_types_are_refused() {
    let d = one(0, crypto(0, &hello()));
    let mut draft29 = d.clone();
    draft29[1..5].copy_from_slice(&0xff00_001du32.to_be_bytes());
    let mut reader = InitialReader::new(CAP);
    assert_eq!(
        reader.feed(&draft29),
        Err(QuicError::UnsupportedVersion(0xff00_001d))
    );
    let mut handshake = Packet::initial(DCID, 0, vec![1]);
    handshake.v1_type = 2;
    let handshake = datagram(&[handshake.seal(None)]);
    assert_eq!(reader.feed(&handshake), Err(QuicError::NotInitial));
    let mut short = d.clone();
    short[0] = 0x40;
    assert_eq!(reader.feed(&short), Err(QuicError::NotInitial));
    assert_eq!(reader.feed(&[]), Err(QuicError::BadHeader("empty packet")));
    let mut unfixed = d.clone();
    unfixed[0] &= !0x40;
    assert_eq!(
        reader.feed(&unfixed),
        Err(QuicError::BadHeader("fixed bit is zero"))
    );
}

#[test]
fn a_corrupted_packet_does_not_decrypt_and_changes_nothing() {
    let m = hello();
    let d = one(0, crypto(0, &m));
    let end = 1200 - 1;
    let mut reader = InitialReader::new(CAP);
    for at in [end, end - 20, 30] {
        let mut bad = d.clone();
        bad[at] ^= 0x01;
        assert_eq!(
            reader.feed(&bad),
            Err(QuicError::DecryptFailed),
            "byte {at}"
        );
    }
    assert_eq!(reader.dcid(), None);
    assert_eq!(feed_all(&mut reader, [&d[..]]), Ok(Some(m)));
}

/// RFC 9000 §12.2: a coalesced packet that does not decrypt is dropped,
/// and the others in the datagram are still read.
#[test]
fn an_undecryptable_coalesced_packet_is_skipped() {
    let m = hello();
    let good = |pn, frames| Packet::initial(DCID, pn, frames).seal(None);
    let mut bad = good(1, crypto(0, &[9; 50]));
    *bad.last_mut().expect("tag") ^= 1;
    let d = datagram(&[bad.clone(), good(2, crypto(0, &m))]);
    let mut reader = InitialReader::new(CAP);
    assert_eq!(feed_all(&mut reader, [&d[..]]), Ok(Some(m)));
    // Alone it is refused.
    let mut reader = InitialReader::new(CAP);
    assert_eq!(
        reader.feed(&datagram(&[bad])),
        Err(QuicError::DecryptFailed)
    );
}

#[test]
fn the_first_datagram_fixes_the_dcid() {
    let m = hello();
    let mut reader = InitialReader::new(CAP);
    assert_eq!(
        reader.feed(&one(0, crypto(0, &m[..100]))),
        Ok(QuicProgress::NeedMore)
    );
    let other = Packet::initial(&[0xd2; 8], 1, crypto(100, &m[100..])).seal(Some(MIN_DATAGRAM));
    assert_eq!(reader.feed(&other), Err(QuicError::DcidMismatch));
    let v2 = Packet {
        version: QuicVersion::V2,
        ..Packet::initial(DCID, 1, crypto(100, &m[100..]))
    };
    assert_eq!(
        reader.feed(&v2.seal(Some(MIN_DATAGRAM))),
        Err(QuicError::DcidMismatch)
    );
    assert_eq!(reader.dcid(), Some(DCID));
    assert_eq!(reader.scid(), Some(&[0x5c; 8][..]));
    assert_eq!(
        feed_all(&mut reader, [&one(1, crypto(100, &m[100..]))[..]]),
        Ok(Some(m))
    );
}

#[test]
fn frames_an_initial_may_not_carry_refuse_the_datagram() {
    let m = hello();
    let mut reader = InitialReader::new(CAP);
    let stream = [crypto(0, &m), vec![0x08, 0, 1, b'x']].concat();
    assert_eq!(
        reader.feed(&one(0, stream)),
        Err(QuicError::BadFrame("frame type not allowed in an Initial"))
    );
    let close = [crypto(0, &m[..10]), vec![0x1c, 0x0a, 0, 0]].concat();
    assert_eq!(reader.feed(&one(0, close)), Err(QuicError::ClientClosed));
    assert_eq!(reader.dcid(), None, "refused datagrams keep nothing");
}

#[test]
fn a_complete_reader_reads_no_more() {
    let m = hello();
    let mut reader = InitialReader::new(CAP);
    assert_eq!(
        feed_all(&mut reader, [&one(0, crypto(0, &m))[..]]),
        Ok(Some(m.clone()))
    );
    // Garbage afterwards is the host's to replay, not ours to judge.
    assert_eq!(feed_all(&mut reader, [&b"junk"[..]]), Ok(Some(m)));
}
