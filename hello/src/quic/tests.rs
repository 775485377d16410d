//! Tests of QUIC Initial reading, and the helpers they share: the RFC
//! sample packets, the captures in `shared/testdata/quic`, and packets
//! crafted here, sealed with rustls's client-side initial keys.

mod captures; // real Chromium and aioquic first flights, in every order
mod close; // the reject answer, opened as the client would
mod crafted; // out of order, coalesced, conflicting, capped, refused
mod rfc; // RFC 9001 and RFC 9369 Appendix A.2, byte for byte

use rustls::Side;
use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;

use super::{InitialReader, MIN_DATAGRAM, QuicError, QuicProgress, QuicVersion};
use crate::HelloSummary;

/// The cap limen uses by default (`hello_max_bytes`).
const CAP: usize = 16 * 1024;

/// A hex file of `quic/testdata`, whitespace ignored.
fn hex_file(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/quic/testdata/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("testdata file");
    let digits: String = text.split_whitespace().collect();
    hex::decode(digits).expect("hex")
}

/// Feed `datagrams` in order; what the last one gave: the message when
/// complete, `None` when more are needed.
fn feed_all<'d>(
    reader: &mut InitialReader,
    datagrams: impl IntoIterator<Item = &'d [u8]>,
) -> Result<Option<Vec<u8>>, QuicError> {
    let mut last = Ok(None);
    for datagram in datagrams {
        last = match reader.feed(datagram) {
            Ok(QuicProgress::Complete(framed)) => Ok(Some(framed.message().to_vec())),
            Ok(QuicProgress::NeedMore) => Ok(None),
            Err(e) => Err(e),
        };
    }
    last
}

/// The summary of a reader that has completed.
fn summary(reader: &mut InitialReader) -> HelloSummary {
    // A complete reader reads nothing more, so any datagram will do.
    match reader.feed(&[]) {
        Ok(QuicProgress::Complete(framed)) => HelloSummary::parse(&framed).expect("parses"),
        other => panic!("expected a complete hello, got {other:?}"),
    }
}

/// A variable-length integer in its shortest form.
fn varint(v: u64) -> Vec<u8> {
    match v {
        0..64 => vec![v as u8],
        64..16384 => (0x4000 | v as u16).to_be_bytes().to_vec(),
        16384..1_073_741_824 => (0x8000_0000 | v as u32).to_be_bytes().to_vec(),
        _ => (0xc000_0000_0000_0000 | v).to_be_bytes().to_vec(),
    }
}

/// A CRYPTO frame.
fn crypto(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend(varint(offset));
    f.extend(varint(data.len() as u64));
    f.extend(data);
    f
}

/// A long-header packet to seal.
#[derive(Clone)]
struct Packet {
    version: QuicVersion,
    /// v1 type code: 0 Initial, 1 0-RTT, 2 Handshake (v2's are derived).
    v1_type: u8,
    dcid: Vec<u8>,
    scid: Vec<u8>,
    pn: u64,
    pn_len: usize,
    frames: Vec<u8>,
}

impl Packet {
    fn initial(dcid: &[u8], pn: u64, frames: Vec<u8>) -> Self {
        Packet {
            version: QuicVersion::V1,
            v1_type: 0,
            dcid: dcid.to_vec(),
            scid: vec![0x5c; 8],
            pn,
            pn_len: 2,
            frames,
        }
    }

    /// Protected with the client's initial keys for `dcid`, as a client
    /// would send it: AEAD with rustls's packet key, then header protection
    /// with its header key. PADDING is added so the packet is `size` bytes
    /// long when given (and always long enough to sample).
    fn seal(&self, size: Option<usize>) -> Vec<u8> {
        let suite = TLS13_AES_128_GCM_SHA256
            .tls13()
            .and_then(|s| s.quic_suite())
            .expect("QUIC suite");
        let keys = suite
            .keys(&self.dcid, Side::Client, self.version.rustls())
            .local;
        let type_bits = match self.version {
            QuicVersion::V2 => (self.v1_type + 1) & 3,
            _ => self.v1_type,
        };
        let mut header = vec![0xc0 | type_bits << 4 | (self.pn_len as u8 - 1)];
        header.extend(self.version.number().to_be_bytes());
        for cid in [&self.dcid, &self.scid] {
            header.push(cid.len() as u8);
            header.extend(cid);
        }
        if self.v1_type == 0 {
            header.push(0); // no token
        }
        let mut payload = self.frames.clone();
        // Length is always written in two bytes, so the size is known now.
        let overhead = header.len() + 2 + self.pn_len + 16;
        let want = size.map_or(0, |s| s - overhead).max(4);
        payload.resize(payload.len().max(want), 0);
        let length = (self.pn_len + payload.len() + 16) as u16;
        header.extend((0x4000 | length).to_be_bytes());
        let pn_offset = header.len();
        header.extend(&self.pn.to_be_bytes()[8 - self.pn_len..]);
        let tag = keys
            .packet
            .encrypt_in_place(self.pn, &header, &mut payload)
            .expect("seal");
        let mut packet = header;
        packet.extend(payload);
        packet.extend(tag.as_ref());
        let sample: Vec<u8> = packet[pn_offset + 4..pn_offset + 20].to_vec();
        let (first, rest) = packet.split_first_mut().expect("non-empty");
        keys.header
            .encrypt_in_place(&sample, first, &mut rest[pn_offset - 1..][..self.pn_len])
            .expect("protect header");
        packet
    }
}

/// Packets back to back, then zeros up to the minimum datagram size.
fn datagram(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut d = packets.concat();
    if d.len() < MIN_DATAGRAM {
        d.resize(MIN_DATAGRAM, 0);
    }
    d
}
