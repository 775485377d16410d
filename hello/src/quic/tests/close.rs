//! The reject answer, opened as the client would open it: rustls's
//! client-side initial keys for the original DCID, whose `remote` half is
//! the server's. Header fields, the CONNECTION_CLOSE and its CRYPTO_ERROR,
//! the `max_len` budget, and an answer to every captured client.

use rustls::Side;

use super::super::cursor::Cursor;
use super::super::frames;
use super::super::header::{self, PacketType};
use super::super::keys::{SAMPLE_OFFSET, initial_keys};
use super::varint;
use crate::quic::{QuicVersion, close_initial};
use crate::tests::shared_dir;

const VERSIONS: [QuicVersion; 2] = [QuicVersion::V1, QuicVersion::V2];
const ODCID: &[u8] = &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
const CLIENT_SCID: &[u8] = &[0x5c; 8];
/// Plenty: 3x the smallest datagram a client Initial may come in.
const BUDGET: usize = 3 * 1200;

/// What the client reads in the answer once protection is off.
#[derive(Debug)]
struct Opened {
    /// The first byte, unmasked.
    first: u8,
    version: u32,
    dcid: Vec<u8>,
    scid: Vec<u8>,
    token_len: u64,
    packet_number: u64,
    frames: Vec<u8>,
}

/// Open `datagram` as the client that sent `odcid`: one Initial filling
/// the whole datagram, its header protection and AEAD removed.
fn open(version: QuicVersion, odcid: &[u8], datagram: &[u8]) -> Option<Opened> {
    open_as(Side::Client, version, odcid, datagram)
}

/// Open with `side`'s remote keys: the client's view reads the server's
/// direction; the server's view (the reader's) reads the client's.
fn open_as(side: Side, version: QuicVersion, odcid: &[u8], datagram: &[u8]) -> Option<Opened> {
    let parsed = header::parse(datagram).ok()?;
    assert_eq!(parsed.kind, PacketType::Initial);
    assert_eq!(parsed.len, datagram.len(), "Length covers the rest exactly");
    let (dcid, scid, pn_offset) = (parsed.dcid.to_vec(), parsed.scid.to_vec(), parsed.pn_offset);

    let keys = initial_keys(version, odcid, side)?.remote;
    let mut packet = datagram.to_vec();
    let sample = packet
        .get(pn_offset + SAMPLE_OFFSET..)?
        .get(..keys.header.sample_len())?
        .to_vec();
    let (first, rest) = packet.split_first_mut()?;
    keys.header
        .decrypt_in_place(&sample, first, &mut rest[pn_offset - 1..][..4])
        .ok()?;
    let first = packet[0];
    let pn_len = usize::from(first & 0x03) + 1;
    let (head, body) = packet.split_at_mut(pn_offset + pn_len);
    let packet_number = head[pn_offset..]
        .iter()
        .fold(0u64, |n, b| (n << 8) | u64::from(*b));
    let frames = keys
        .packet
        .decrypt_in_place(packet_number, head, body)
        .ok()?
        .to_vec();

    let mut c = Cursor::new(&datagram[5 + 1 + dcid.len() + 1 + scid.len()..]);
    Some(Opened {
        first,
        version: u32::from_be_bytes(datagram[1..5].try_into().ok()?),
        dcid,
        scid,
        token_len: c.varint()?,
        packet_number,
        frames,
    })
}

/// The CONNECTION_CLOSE at the start of `frames`: (error code, frame type,
/// reason), and whether all that follows is PADDING.
fn connection_close(frames: &[u8]) -> (u64, u64, Vec<u8>, bool) {
    let mut c = Cursor::new(frames);
    assert_eq!(c.u8(), Some(0x1c), "transport CONNECTION_CLOSE");
    let code = c.varint().expect("error code");
    let frame_type = c.varint().expect("frame type");
    let reason_len = c.varint_len().expect("reason length");
    let reason = c.take(reason_len).expect("reason").to_vec();
    let padding_only = frames[c.pos()..].iter().all(|b| *b == 0);
    (code, frame_type, reason, padding_only)
}

/// Everything a client checks, for one answer.
fn assert_close(version: QuicVersion, odcid: &[u8], client_scid: &[u8], alert: u8, d: &[u8]) {
    let o = open(version, odcid, d).expect("the client opens it");
    let type_bits = match version {
        QuicVersion::V1 => 0x00,
        _ => 0x10, // RFC 9369 §3.2: v2's Initial is type 0b01
    };
    assert_eq!(o.first, 0xc0 | type_bits, "long, fixed, Initial, pn_len 1");
    assert_eq!(o.version, version.number());
    assert_eq!(o.dcid, client_scid, "addressed to the client's SCID");
    assert_eq!(o.scid, odcid, "the server's SCID echoes the original DCID");
    assert_eq!(o.token_len, 0, "servers send no token (RFC 9000 §17.2.2)");
    assert_eq!(o.packet_number, 0);
    let (code, frame_type, reason, padding_only) = connection_close(&o.frames);
    assert_eq!(code, 0x100 + u64::from(alert), "CRYPTO_ERROR + alert");
    assert_eq!(frame_type, 0x06, "triggered by CRYPTO");
    assert!(reason.is_empty());
    assert!(padding_only);
    // The crate's own frame walker reads it as a close, too.
    let mut crypto = Vec::new();
    let seen = frames::read(&o.frames, &mut crypto).expect("valid frames");
    assert!(seen.close && crypto.is_empty());
}

#[test]
fn the_client_opens_the_close_and_reads_the_alert_v1_and_v2() {
    // unrecognized_name, access_denied, handshake_failure.
    for (alert, code) in [(112, 0x170), (49, 0x131), (40, 0x128)] {
        for version in VERSIONS {
            let d = close_initial(version, ODCID, CLIENT_SCID, alert, BUDGET).expect("fits");
            assert_close(version, ODCID, CLIENT_SCID, alert, &d);
            let o = open(version, ODCID, &d).expect("opens");
            assert_eq!(connection_close(&o.frames).0, code);
            // The code is the two-byte varint 0x41xx on the wire.
            assert_eq!(o.frames[1..3], varint(code)[..], "{version:?}");
        }
    }
}

#[test]
fn the_answer_is_small_and_not_padded_to_1200() {
    let d = close_initial(QuicVersion::V1, ODCID, CLIENT_SCID, 112, BUDGET).expect("fits");
    // 1 + 4 + 1+8 + 1+8 + token 1 + Length 1 + pn 1 + frame 5 + tag 16.
    assert_eq!(d.len(), 47);
    let longest = close_initial(QuicVersion::V2, &[7; 20], &[9; 20], 0, BUDGET).expect("fits");
    assert_eq!(longest.len(), 71);
}

#[test]
fn every_alert_and_connection_id_length_opens() {
    for version in VERSIONS {
        for alert in 0..=u8::MAX {
            let d = close_initial(version, ODCID, CLIENT_SCID, alert, BUDGET).expect("fits");
            assert_close(version, ODCID, CLIENT_SCID, alert, &d);
        }
        // Zero-length IDs are legal for the client's SCID; the original
        // DCID is at least 8 bytes in practice, but any length works.
        for odcid_len in 0..=20u8 {
            for scid_len in 0..=20u8 {
                let odcid: Vec<u8> = (0..odcid_len).map(|i| i.wrapping_mul(37)).collect();
                let scid = vec![scid_len ^ 0xa5; usize::from(scid_len)];
                let d = close_initial(version, &odcid, &scid, 40, BUDGET).expect("fits");
                assert_close(version, &odcid, &scid, 40, &d);
            }
        }
    }
}

#[test]
fn max_len_is_respected() {
    for version in VERSIONS {
        let full = close_initial(version, ODCID, CLIENT_SCID, 112, BUDGET).expect("fits");
        let exact = close_initial(version, ODCID, CLIENT_SCID, 112, full.len());
        assert_eq!(exact.as_ref(), Some(&full), "fits exactly");
        for max_len in 0..full.len() {
            assert_eq!(
                close_initial(version, ODCID, CLIENT_SCID, 112, max_len),
                None,
                "{max_len}"
            );
        }
        assert!(close_initial(version, ODCID, CLIENT_SCID, 112, usize::MAX).is_some());
    }
}

#[test]
fn connection_ids_over_20_bytes_are_refused() {
    for version in VERSIONS {
        assert_eq!(
            close_initial(version, &[1; 21], CLIENT_SCID, 40, BUDGET),
            None
        );
        assert_eq!(close_initial(version, ODCID, &[1; 21], 40, BUDGET), None);
        assert_eq!(
            close_initial(version, &[1; 255], &[2; 300], 40, BUDGET),
            None
        );
    }
}

/// Only the keys of that DCID and that version open it: the answer is bound
/// to the client's connection, and v2's salt and labels are really used.
/// Nor do the client-direction keys, those the reader opens the RFC's
/// client Initials with: the initial secrets are "client in" and "server
/// in" only, so it is sealed with the server's, not merely with whatever
/// rustls's `Side::Client` calls remote.
#[test]
fn other_keys_do_not_open_it() {
    for (version, other) in [(VERSIONS[0], VERSIONS[1]), (VERSIONS[1], VERSIONS[0])] {
        let d = close_initial(version, ODCID, CLIENT_SCID, 112, BUDGET).expect("fits");
        assert!(open(version, ODCID, &d).is_some());
        assert!(open(version, &[0x11; 8], &d).is_none(), "another DCID");
        assert!(open(other, ODCID, &d).is_none(), "{other:?}'s keys");
        assert!(
            open_as(Side::Server, version, ODCID, &d).is_none(),
            "client's"
        );
    }
}

#[test]
fn the_same_request_gets_the_same_bytes() {
    // No randomness and no state: a retransmitted client Initial gets the
    // answer it got before.
    for version in VERSIONS {
        let a = close_initial(version, ODCID, CLIENT_SCID, 49, BUDGET);
        let b = close_initial(version, ODCID, CLIENT_SCID, 49, BUDGET);
        assert_eq!(a, b);
    }
}

/// Each captured client datagram, answered as limen would: its DCID and
/// SCID, within 3x its size, and opened with its keys.
#[test]
fn every_captured_client_gets_a_close_it_can_open() {
    let dir = shared_dir().join("testdata/quic");
    let mut answered = 0;
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set LIMEN_SHARED?)", dir.display()));
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let datagram = std::fs::read(&path).expect("capture");
        let (version, _) = header::peek(&datagram)
            .expect("a long header")
            .expect("a long header");
        let client = header::parse(&datagram).expect("parses");
        for alert in [40, 49, 112] {
            let d = close_initial(version, client.dcid, client.scid, alert, 3 * datagram.len())
                .unwrap_or_else(|| panic!("{}: does not fit", path.display()));
            assert!(d.len() <= 3 * datagram.len());
            assert_close(version, client.dcid, client.scid, alert, &d);
        }
        answered += 1;
    }
    assert!(
        answered >= 9,
        "only {answered} captures in {}",
        dir.display()
    );
}
