//! QUIC client Initials: the datagrams anyone can send to a QUIC listener.
//!
//! Input: one mode byte, then datagrams, each behind a 2-byte big-endian
//! length (a short last one takes what is left). Mode bit 0 clear: the
//! datagrams are fed as they are (the captures in `shared/testdata/quic`
//! seed this). Set: each is a plaintext frame payload, sealed here into a
//! padded Initial with rustls's client keys (v2 when bit 1 is set), so the
//! fuzzer reaches the frame parser and the CRYPTO reassembly, which random
//! bytes never get past the AEAD to.
//!
//! Beyond "no panic": an error that is final stays final, any other error
//! leaves the reader as it was, a complete hello stays complete and parses
//! to a QUIC summary, and (sealed mode) the datagrams that completed it
//! give the same hello fed in reverse order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limen_hello::{HelloSummary, InitialReader, QuicError, QuicProgress, Transport};
use rustls::Side;
use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;

/// limen's default `hello_max_bytes`.
const CAP: usize = 16 * 1024;
const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut datagrams = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        datagrams.push(chunk.to_vec());
        rest = tail;
    }
    let sealed = mode & 1 == 1;
    if sealed {
        let v2 = mode & 2 == 2;
        datagrams = (0..)
            .zip(datagrams)
            .map(|(pn, payload)| seal(v2, pn, payload))
            .collect();
    }
    let mut reader = InitialReader::new(CAP);
    let mut done: Option<(usize, Vec<u8>)> = None;
    for (i, datagram) in datagrams.iter().enumerate() {
        let before = (reader.version(), reader.dcid().map(<[u8]>::to_vec));
        match reader.feed(datagram) {
            Ok(QuicProgress::Complete(framed)) => {
                let message = framed.message().to_vec();
                if let Some((_, earlier)) = &done {
                    assert_eq!(earlier, &message, "a complete hello changed");
                } else {
                    if let Ok(hello) = HelloSummary::parse(&framed) {
                        assert_eq!(hello.transport(), Transport::Quic);
                        assert!(hello.fingerprints().ja4.starts_with('q'));
                        serde_json::to_string(&hello).expect("a summary always serialises");
                    }
                    done = Some((i, message));
                }
            }
            Ok(QuicProgress::NeedMore) => assert!(done.is_none(), "complete, then not"),
            Err(error) if error.is_final() => {
                assert_eq!(reader.feed(datagram), Err(error.clone()), "final, then not");
                return;
            }
            Err(error) => {
                let _ = error.reason();
                let after = (reader.version(), reader.dcid().map(<[u8]>::to_vec));
                assert_eq!(
                    before, after,
                    "a refused datagram changed the reader: {error}"
                );
            }
        }
    }
    let Some((last, message)) = done.filter(|_| sealed) else {
        return;
    };
    let mut reverse = InitialReader::new(CAP);
    let mut got = None;
    for datagram in datagrams[..=last].iter().rev() {
        match reverse.feed(datagram) {
            Ok(QuicProgress::Complete(framed)) => {
                got = Some(framed.message().to_vec());
                break;
            }
            Ok(QuicProgress::NeedMore) => {}
            // How many gaps are open at once depends on the order.
            Err(QuicError::TooFragmented) => return,
            Err(e) if e.is_final() => panic!("reverse order failed where forward did not: {e}"),
            Err(_) => {}
        }
    }
    assert_eq!(got, Some(message), "reverse order gave another hello");
});

/// `payload` as the frames of a v1 (or v2) client Initial for [`DCID`],
/// padded to a 1200-byte datagram: AEAD, then header protection, both with
/// rustls's client-side initial keys.
fn seal(v2: bool, pn: u16, mut payload: Vec<u8>) -> Vec<u8> {
    let (version, number, initial_bits) = match v2 {
        false => (rustls::quic::Version::V1, 1u32, 0u8),
        true => (rustls::quic::Version::V2, 0x6b33_43cf, 1),
    };
    let keys = TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .expect("ring's AES-128-GCM suite does QUIC")
        .keys(&DCID, Side::Client, version)
        .local;
    // 2-byte packet number; no SCID, no token; a 4-byte Length.
    let mut header = vec![0xc1 | initial_bits << 4];
    header.extend(number.to_be_bytes());
    header.push(DCID.len() as u8);
    header.extend(DCID);
    header.extend([0, 0]);
    let overhead = header.len() + 4 + 2 + 16;
    payload.resize(payload.len().max(1200 - overhead), 0);
    let length = (2 + payload.len() + 16) as u32;
    header.extend((0x8000_0000 | length).to_be_bytes());
    let pn_offset = header.len();
    header.extend(pn.to_be_bytes());
    let tag = keys
        .packet
        .encrypt_in_place(u64::from(pn), &header, &mut payload)
        .expect("seal");
    let mut packet = header;
    packet.extend(payload);
    packet.extend(tag.as_ref());
    let sample = packet[pn_offset + 4..pn_offset + 20].to_vec();
    let (first, rest) = packet.split_first_mut().expect("non-empty");
    keys.header
        .encrypt_in_place(&sample, first, &mut rest[pn_offset - 1..pn_offset + 1])
        .expect("protect");
    packet
}
