//! RFC 9001 Appendix A.2 (v1) and RFC 9369 Appendix A.2 (v2): the sample
//! client Initial decrypts to the sample CRYPTO frame, byte for byte, and
//! the helper that crafts test packets protects it back to the same bytes.

use super::super::header;
use super::super::keys::InitialKeys;
use super::{CAP, Packet, hex_file, summary};
use crate::quic::{InitialReader, QuicProgress, QuicVersion};
use crate::{Framed, HelloSummary, Transport};

/// The sample's client Destination Connection ID.
const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
/// Its unprotected payload: the CRYPTO frame, then PADDING.
const PAYLOAD_LEN: usize = 1162;

fn sample(version: QuicVersion) -> Vec<u8> {
    hex_file(match version {
        QuicVersion::V1 => "rfc9001-a2-client-initial.hex",
        _ => "rfc9369-a2-client-initial.hex",
    })
}

/// The unprotected payload both RFCs give.
fn payload() -> Vec<u8> {
    let mut payload = hex_file("rfc9001-a2-crypto-frame.hex");
    payload.resize(PAYLOAD_LEN, 0);
    payload
}

fn decrypts_to_the_sample(version: QuicVersion) {
    let mut packet = sample(version);
    assert_eq!(
        packet.len(),
        1200,
        "the sample datagram is exactly 1200 bytes"
    );
    let parsed = header::parse(&packet).expect("long header");
    assert_eq!(parsed.dcid, DCID);
    assert!(parsed.scid.is_empty());
    assert_eq!(parsed.len, packet.len(), "one packet fills the datagram");
    let pn_offset = parsed.pn_offset;
    let keys = InitialKeys::new(version, &DCID).expect("keys");
    let opened = keys.open(&mut packet, pn_offset, None).expect("decrypts");
    assert_eq!(opened.packet_number, 2);
    assert_eq!(opened.payload, payload());
}

#[test]
fn rfc9001_client_initial_decrypts_byte_for_byte() {
    decrypts_to_the_sample(QuicVersion::V1);
}

#[test]
fn rfc9369_client_initial_decrypts_byte_for_byte() {
    decrypts_to_the_sample(QuicVersion::V2);
}

/// The crafting helper, checked against the RFCs: it must produce their
/// protected packets exactly, or the crafted tests prove nothing.
#[test]
fn sealing_the_sample_payload_gives_the_rfc_packets() {
    for version in [QuicVersion::V1, QuicVersion::V2] {
        let packet = Packet {
            version,
            v1_type: 0,
            dcid: DCID.to_vec(),
            scid: Vec::new(),
            pn: 2,
            pn_len: 4,
            frames: payload(),
        };
        assert_eq!(packet.seal(None), sample(version), "{version:?}");
    }
}

#[test]
fn the_reader_gives_the_sample_client_hello() {
    let frame = hex_file("rfc9001-a2-crypto-frame.hex");
    // CRYPTO type, offset 0, 2-byte length 241, then the message.
    let message = &frame[4..];
    for version in [QuicVersion::V1, QuicVersion::V2] {
        let mut reader = InitialReader::new(CAP);
        match reader.feed(&sample(version)) {
            Ok(QuicProgress::Complete(framed)) => {
                assert_eq!(framed.message(), message);
                assert_eq!(framed.transport(), Transport::Quic);
            }
            other => panic!("{version:?}: {other:?}"),
        }
        assert_eq!(reader.version(), Some(version));
        assert_eq!(reader.dcid(), Some(&DCID[..]));
        assert_eq!(reader.scid(), Some(&[][..]));
        let hello = summary(&mut reader);
        assert_eq!(hello.sni().map(AsRef::as_ref), Some("example.com"));
        assert!(hello.alpn().eq([&b"alpn"[..]]));
        assert_eq!(hello.transport(), Transport::Quic);
        assert_eq!((hello.record_version(), hello.record_count()), (0, 0));
        assert!(hello.fingerprints().ja4.starts_with("q13d"));
    }
}

/// The same message over TCP gives the same summary but for the transport,
/// the record fields and JA4's first letter.
#[test]
fn quic_and_tcp_summaries_differ_only_in_transport() {
    let frame = hex_file("rfc9001-a2-crypto-frame.hex");
    let message = &frame[4..];
    let quic = HelloSummary::parse(&Framed::quic(message)).expect("parses");
    let mut record = vec![0x16, 0x03, 0x01, 0x00, message.len() as u8];
    record.extend(message);
    let tcp = crate::tests::summarize(&record);
    assert_eq!(tcp.transport(), Transport::Tcp);
    assert_eq!((tcp.record_version(), tcp.record_count()), (0x0301, 1));
    assert_eq!(quic.sni(), tcp.sni());
    assert!(quic.alpn().eq(tcp.alpn()));
    assert_eq!(quic.extensions(), tcp.extensions());
    let (q, t) = (quic.fingerprints(), tcp.fingerprints());
    assert_eq!(q.ja3, t.ja3);
    assert_eq!(q.ja4[1..], t.ja4[1..]);
    assert_eq!(q.ja4_r[1..], t.ja4_r[1..]);
    assert_eq!((&q.ja4[..1], &t.ja4[..1]), ("q", "t"));
    // explain's JSON names the transport for QUIC only: TCP output unchanged.
    let json = |h: &HelloSummary| serde_json::to_value(h).expect("json");
    assert_eq!(json(&quic)["transport"], "quic");
    assert!(json(&tcp).get("transport").is_none());
}
