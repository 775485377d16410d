//! The frames of a decrypted Initial (RFC 9000 §19). A client's Initial
//! may carry only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE (§12.4,
//! §17.2.2); anything else is a protocol violation and refuses the packet.

use super::QuicError;
use super::cursor::Cursor;

const PADDING: u8 = 0x00;
const PING: u8 = 0x01;
const ACK: u8 = 0x02;
const ACK_ECN: u8 = 0x03;
const CRYPTO: u8 = 0x06;
/// The transport-level CONNECTION_CLOSE; 0x1d, the application's, is not
/// allowed in an Initial.
const CONNECTION_CLOSE: u8 = 0x1c;
/// Stream offsets, CRYPTO's included, end below 2^62 (RFC 9000 §19.6).
const MAX_OFFSET: u64 = (1 << 62) - 1;

/// One CRYPTO frame: `data` belongs at `offset` of the Initial CRYPTO stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Crypto<'a> {
    pub(super) offset: u64,
    pub(super) data: &'a [u8],
}

/// What one Initial's frames say beyond its CRYPTO data.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    /// It held a CONNECTION_CLOSE: the client gave up.
    pub(super) close: bool,
}

/// Walk every frame of `payload`, appending its CRYPTO frames to `crypto`
/// in the order sent. Every frame must parse whole: a frame cut short by
/// the end of the packet is an error, not padding.
pub(super) fn read<'a>(payload: &'a [u8], crypto: &mut Vec<Crypto<'a>>) -> Result<Seen, QuicError> {
    if payload.is_empty() {
        // RFC 9000 §12.4: a packet without frames is a protocol violation.
        return Err(QuicError::BadFrame("packet holds no frames"));
    }
    let mut c = Cursor::new(payload);
    let mut seen = Seen::default();
    while let Some(kind) = c.u8() {
        match kind {
            // One byte each; runs of them are common (PADDING fills a packet).
            PADDING | PING => {}
            ACK | ACK_ECN => skip_ack(&mut c, kind == ACK_ECN)?,
            CRYPTO => crypto.push(crypto_frame(&mut c)?),
            CONNECTION_CLOSE => {
                skip_connection_close(&mut c)?;
                seen.close = true;
            }
            // Frame types are varints, but every type allowed here fits in
            // one byte and must be encoded minimally (RFC 9000 §12.4), so a
            // longer encoding is refused with the unknown types.
            _ => return Err(QuicError::BadFrame("frame type not allowed in an Initial")),
        }
    }
    Ok(seen)
}

fn crypto_frame<'a>(c: &mut Cursor<'a>) -> Result<Crypto<'a>, QuicError> {
    const TRUNCATED: QuicError = QuicError::BadFrame("CRYPTO frame truncated");
    let offset = c.varint().ok_or(TRUNCATED)?;
    let len = c.varint_len().ok_or(TRUNCATED)?;
    let data = c.take(len).ok_or(TRUNCATED)?;
    if offset.saturating_add(len as u64) > MAX_OFFSET {
        return Err(QuicError::BadFrame("CRYPTO data past 2^62-1"));
    }
    Ok(Crypto { offset, data })
}

/// ACK (§19.3): largest, delay, range count, first range, then count
/// (gap, length) pairs, then three ECN counts for type 0x03. The count is
/// the client's; each range costs at least two bytes, so the walk stops at
/// the end of the packet however large it claims to be.
fn skip_ack(c: &mut Cursor<'_>, ecn: bool) -> Result<(), QuicError> {
    const TRUNCATED: QuicError = QuicError::BadFrame("ACK frame truncated");
    let mut field = || c.varint().ok_or(TRUNCATED);
    let _largest = field()?;
    let _delay = field()?;
    let ranges = field()?;
    let _first_range = field()?;
    for _ in 0..ranges {
        let _gap = field()?;
        let _length = field()?;
    }
    if ecn {
        for _ in 0..3 {
            field()?;
        }
    }
    Ok(())
}

/// CONNECTION_CLOSE 0x1c (§19.19): error code, frame type, reason phrase.
fn skip_connection_close(c: &mut Cursor<'_>) -> Result<(), QuicError> {
    const TRUNCATED: QuicError = QuicError::BadFrame("CONNECTION_CLOSE frame truncated");
    c.varint().ok_or(TRUNCATED)?;
    c.varint().ok_or(TRUNCATED)?;
    let len = c.varint_len().ok_or(TRUNCATED)?;
    c.take(len).ok_or(TRUNCATED)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payload: &[u8]) -> Result<(Vec<Crypto<'_>>, Seen), QuicError> {
        let mut crypto = Vec::new();
        let seen = read(payload, &mut crypto)?;
        Ok((crypto, seen))
    }

    #[test]
    fn padding_ping_and_acks_are_skipped() {
        // PING, ACK (largest 5, delay 0, 1 range, first 0, gap 1, len 2),
        // ACK_ECN (largest 0x4000 as a 2-byte varint, delay, 0 ranges, first,
        // three counts), CRYPTO at 3 of "abc", PADDING.
        let payload = [
            0x01, 0x02, 5, 0, 1, 0, 1, 2, 0x03, 0x40, 0x00, 0, 0, 0, 7, 8, 9, 0x06, 3, 3, b'a',
            b'b', b'c', 0, 0, 0,
        ];
        let (crypto, seen) = frames(&payload).expect("valid frames");
        assert_eq!(
            crypto,
            [Crypto {
                offset: 3,
                data: b"abc"
            }]
        );
        assert!(!seen.close);
    }

    #[test]
    fn connection_close_is_seen() {
        // Error 0x0a, frame type 0, reason "bye", then padding.
        let (crypto, seen) = frames(&[0x1c, 0x0a, 0, 3, b'b', b'y', b'e', 0]).expect("valid");
        assert!(crypto.is_empty());
        assert!(seen.close);
    }

    #[test]
    fn frames_an_initial_may_not_carry_are_refused() {
        for kind in [0x08, 0x1d, 0x1e, 0x07, 0x40] {
            assert_eq!(
                frames(&[kind, 0, 0, 0]),
                Err(QuicError::BadFrame("frame type not allowed in an Initial")),
                "type {kind:#x}"
            );
        }
        assert_eq!(
            frames(&[]),
            Err(QuicError::BadFrame("packet holds no frames"))
        );
    }

    #[test]
    fn truncated_frames_are_refused() {
        assert!(frames(&[0x06, 0, 5, b'a']).is_err(), "CRYPTO data cut");
        assert!(frames(&[0x02, 1, 0, 0x3f]).is_err(), "ACK claims 63 ranges");
        assert!(frames(&[0x03, 1, 0, 0, 0, 1, 2]).is_err(), "ECN counts cut");
        assert!(frames(&[0x1c, 0, 0, 9, b'x']).is_err(), "reason cut");
        // Offset 2^62-1 with one byte of data ends past the limit.
        let far = [
            0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, b'x',
        ];
        assert_eq!(
            frames(&far),
            Err(QuicError::BadFrame("CRYPTO data past 2^62-1"))
        );
    }
}
