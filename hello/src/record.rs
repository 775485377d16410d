//! TLS record framing: decide whether the buffered bytes hold one complete
//! ClientHello handshake message, reassembling it across records.
//!
//! This runs on every read of a new connection, so it only walks record
//! headers and copies nothing until the message is complete.

use std::borrow::Cow;

use super::{HelloError, Transport};

/// TLS record content type for handshake messages.
const CONTENT_HANDSHAKE: u8 = 0x16;
/// Handshake message type of a ClientHello.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Record header: type, version (2), length (2).
const RECORD_HEADER_LEN: usize = 5;
/// Handshake header: type, 24-bit length.
const HANDSHAKE_HEADER_LEN: usize = 4;
/// Largest record body a peer may send (RFC 8446 5.2 allows 2^14 + 256 for
/// protected records; plaintext ones must be smaller, so this is generous).
const MAX_RECORD_BODY: usize = 16384 + 256;

/// How far the bytes read so far get towards a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<'a> {
    /// Every byte seen so far fits a ClientHello that is still incomplete;
    /// read more (this is the only answer for any strict prefix of a hello).
    NeedMore,
    /// The first byte is not a TLS handshake record (plain text, SSH, HTTP,
    /// SSLv2-format hellos): the policy decides with no hello at all.
    NotTls,
    /// A whole ClientHello handshake message is buffered.
    Complete(Framed<'a>),
}

/// A complete ClientHello handshake message and where it sat on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed<'a> {
    message: Cow<'a, [u8]>,
    wire_len: usize,
    records: u32,
    record_version: u16,
    transport: Transport,
}

impl Framed<'_> {
    /// The handshake message, 4-byte handshake header included. Borrowed when
    /// it lay in one record, copied when it had to be reassembled.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// Offset just past the message's last byte in the framed buffer. Bytes
    /// after it (the rest of the last record, or early stream data) belong to
    /// the connection and must be replayed with the hello.
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// How many TLS records carried the message (at least 1 over TCP; 0
    /// over QUIC, which has no records).
    pub fn records(&self) -> u32 {
        self.records
    }

    /// The legacy version field of the first record header (often 0x0301 even
    /// for TLS 1.3 clients; kept for fingerprinting, not for decisions).
    pub fn record_version(&self) -> u16 {
        self.record_version
    }

    /// The transport that carried the message.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}

impl<'a> Framed<'a> {
    /// A ClientHello that came in QUIC CRYPTO frames. QUIC has no TLS record
    /// layer (RFC 9001 §4), so [`records`](Self::records) and
    /// [`record_version`](Self::record_version) are 0, a value no TLS record
    /// can have; [`wire_len`](Self::wire_len) is the message length, the
    /// CRYPTO-stream offset just past it (the host replays datagrams, not
    /// these bytes).
    pub(crate) fn quic(message: &'a [u8]) -> Self {
        Framed {
            message: Cow::Borrowed(message),
            wire_len: message.len(),
            records: 0,
            record_version: 0,
            transport: Transport::Quic,
        }
    }
}

/// Decide whether `buf`, all bytes read so far from a connection, holds a
/// complete ClientHello.
///
/// `cap` is the most bytes the caller will ever buffer for a hello. Only the
/// first `cap` bytes are looked at, so the answer does not depend on how much
/// extra the caller happened to read: a hello whose last byte lies beyond
/// `cap` is [`HelloError::TooLarge`], reported as soon as the handshake header
/// shows its length.
pub fn frame(buf: &[u8], cap: usize) -> Result<Progress<'_>, HelloError> {
    match buf.first() {
        None => return Ok(Progress::NeedMore),
        Some(&CONTENT_HANDSHAKE) => {}
        Some(_) => return Ok(Progress::NotTls),
    }
    let view = buf.get(..cap).unwrap_or(buf);
    // What a strict prefix of a good hello gets when nothing more is buffered.
    let incomplete = || {
        if buf.len() >= cap {
            Err(HelloError::TooLarge)
        } else {
            Ok(Progress::NeedMore)
        }
    };

    let mut walk = Records { buf: view, pos: 0 };
    let mut record_version = 0;
    let mut records: u32 = 0;
    // The handshake header may itself be split across records, so it is
    // collected byte by byte until all four are in.
    let mut head = [0u8; HANDSHAKE_HEADER_LEN];
    let mut head_len = 0;
    let mut gathered = 0; // message bytes seen, header included
    let mut size = None; // full message size once the header is known
    loop {
        let Some(record) = walk.next_record()? else {
            return incomplete();
        };
        if records == 0 {
            record_version = record.version;
        }
        records = records.saturating_add(1);
        let mut used = 0; // bytes of this record's body taken so far
        for &byte in record.body {
            if head_len == HANDSHAKE_HEADER_LEN {
                break;
            }
            if head_len == 0 && byte != HANDSHAKE_CLIENT_HELLO {
                return Err(HelloError::Malformed(
                    "first handshake message is not a ClientHello",
                ));
            }
            if let Some(slot) = head.get_mut(head_len) {
                *slot = byte;
            }
            head_len += 1;
            used += 1;
        }
        gathered += used;
        if size.is_none() && head_len == HANDSHAKE_HEADER_LEN {
            let [_, a, b, c] = head;
            let total = HANDSHAKE_HEADER_LEN + u32::from_be_bytes([0, a, b, c]) as usize;
            if min_wire_len(total) > cap {
                return Err(HelloError::TooLarge);
            }
            size = Some(total);
        }
        if let Some(total) = size {
            let take = (total - gathered).min(record.body.len() - used);
            gathered += take;
            used += take;
            if gathered == total {
                let wire_len = record.body_start + used;
                let message = if records == 1 {
                    Cow::Borrowed(record.body.get(..used).unwrap_or_default())
                } else {
                    Cow::Owned(reassemble(view, total)?)
                };
                return Ok(Progress::Complete(Framed {
                    message,
                    wire_len,
                    records,
                    record_version,
                    transport: Transport::Tcp,
                }));
            }
        }
        if record.truncated {
            return incomplete();
        }
    }
}

/// The fewest bytes on the wire that can carry a handshake message of
/// `size` bytes: each record adds a header and holds at most
/// [`MAX_RECORD_BODY`], so this never refuses a hello that could fit.
fn min_wire_len(size: usize) -> usize {
    size + RECORD_HEADER_LEN * size.div_ceil(MAX_RECORD_BODY)
}

/// Copy the first `size` handshake bytes out of the records in `buf`.
/// Only called after [`frame`] has validated those records.
fn reassemble(buf: &[u8], size: usize) -> Result<Vec<u8>, HelloError> {
    let mut out = Vec::with_capacity(size);
    let mut walk = Records { buf, pos: 0 };
    while out.len() < size {
        let Some(record) = walk.next_record()? else {
            break;
        };
        let take = (size - out.len()).min(record.body.len());
        out.extend_from_slice(record.body.get(..take).unwrap_or_default());
    }
    if out.len() == size {
        Ok(out)
    } else {
        Err(HelloError::Malformed("records end before the ClientHello"))
    }
}

/// A cursor over consecutive handshake records.
struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One record header and as much of its body as is buffered.
struct Record<'a> {
    version: u16,
    /// Offset of the body in the walked buffer.
    body_start: usize,
    /// The buffered part of the body.
    body: &'a [u8],
    /// Whether the buffer ends before the body does.
    truncated: bool,
}

impl<'a> Records<'a> {
    /// The next record, `None` when its header is not fully buffered yet.
    ///
    /// Each header field is checked as soon as its byte is present, so junk
    /// is refused early rather than after the cap fills up.
    fn next_record(&mut self) -> Result<Option<Record<'a>>, HelloError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest.first() {
            None => return Ok(None),
            Some(&CONTENT_HANDSHAKE) => {}
            Some(_) => {
                return Err(HelloError::Malformed(
                    "non-handshake record before the ClientHello ends",
                ));
            }
        }
        match rest.get(1) {
            None => return Ok(None),
            Some(3) => {}
            Some(_) => return Err(HelloError::Malformed("record version is not 3.x")),
        }
        let (Some(&minor), Some(&hi), Some(&lo)) = (rest.get(2), rest.get(3), rest.get(4)) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            // RFC 8446 5.1 forbids empty handshake fragments; allowing them
            // would let a client spin us with endless 5-byte records.
            return Err(HelloError::Malformed("empty handshake record"));
        }
        if len > MAX_RECORD_BODY {
            return Err(HelloError::Malformed("record longer than 2^14+256 bytes"));
        }
        let avail = rest.get(RECORD_HEADER_LEN..).unwrap_or_default();
        let body = avail.get(..len).unwrap_or(avail);
        let body_start = self.pos + RECORD_HEADER_LEN;
        self.pos = body_start + body.len();
        Ok(Some(Record {
            version: u16::from_be_bytes([3, minor]),
            body_start,
            body,
            truncated: body.len() < len,
        }))
    }
}
