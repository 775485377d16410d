//! The Initial CRYPTO stream, put back together by offset: fragments may
//! come in any order, across packets and datagrams, and a retransmission
//! may cut the same bytes at other offsets. Overlaps must agree byte for
//! byte; the stream ends, for us, once it holds the whole ClientHello.

use std::ops::Range;

use super::QuicError;

/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Handshake header: type, 24-bit length.
const HANDSHAKE_HEADER_LEN: usize = 4;

/// Most separate pieces (runs of held bytes with a gap between them) the
/// stream holds before it gives up with [`QuicError::TooFragmented`].
///
/// Why 64: Chromium 148, which scrambles hardest, sends 13-14 CRYPTO frames
/// per Initial, about 70 in its flight and three retransmissions, yet fed
/// frame by frame in every order of its datagrams it never leaves more than
/// 5 pieces at once (measured by the captures' every-order test, which
/// fails above 16). 64 is room for far worse scrambling; what it stops is a
/// client sending hundreds of one-byte frames with gaps, which would make
/// every insert walk and shift that many ranges: with the bound an insert
/// costs at most 64 steps, so a datagram's worth of frames stays cheap.
pub(super) const MAX_PIECES: usize = 64;

/// The CRYPTO bytes received so far, at most `cap` of them.
#[derive(Debug)]
pub(super) struct CryptoStream {
    cap: usize,
    /// Stream bytes at their offsets; only the `held` ranges mean anything.
    data: Vec<u8>,
    /// Sorted, disjoint and never touching: touching ranges are merged.
    held: Vec<Range<usize>>,
    /// The most pieces held at any time (tests measure the bound with it).
    peak: usize,
}

impl CryptoStream {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap,
            data: Vec::new(),
            held: Vec::new(),
            peak: 0,
        }
    }

    /// The most separate pieces held at any time so far.
    #[cfg(test)]
    pub(super) fn peak_pieces(&self) -> usize {
        self.peak
    }

    /// Add `bytes` at `offset`. Errors are final: the stream cannot become
    /// a hello any more (data past the cap, bytes that disagree with those
    /// held, too many pieces).
    pub(super) fn insert(&mut self, offset: u64, bytes: &[u8]) -> Result<(), QuicError> {
        if bytes.is_empty() {
            // Legal and meaningless (RFC 9000 §19.6 allows empty frames).
            return Ok(());
        }
        let start = usize::try_from(offset).map_err(|_| QuicError::TooLarge)?;
        let end = start
            .checked_add(bytes.len())
            .filter(|end| *end <= self.cap)
            .ok_or(QuicError::TooLarge)?;
        // Ranges that overlap or touch [start, end): they merge with it.
        let first = self.held.partition_point(|r| r.end < start);
        let last = self.held.partition_point(|r| r.start <= end);
        for r in self.held.get(first..last).unwrap_or_default() {
            let (from, to) = (r.start.max(start), r.end.min(end));
            if from < to && self.data.get(from..to) != bytes.get(from - start..to - start) {
                return Err(QuicError::ConflictingCrypto);
            }
        }
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        if let Some(slot) = self.data.get_mut(start..end) {
            slot.copy_from_slice(bytes);
        }
        let merged = match self.held.get(first..last) {
            Some([a, .., z] | [a @ z]) => a.start.min(start)..z.end.max(end),
            _ => start..end,
        };
        self.held.splice(first..last, [merged]);
        self.peak = self.peak.max(self.held.len());
        if self.held.len() > MAX_PIECES {
            return Err(QuicError::TooFragmented);
        }
        Ok(())
    }

    /// The ClientHello handshake message once offsets 0.. hold all of it,
    /// `None` while they do not yet. Errors are final: the first message
    /// is not a ClientHello, or its declared length passes the cap.
    pub(super) fn hello(&self) -> Result<Option<&[u8]>, QuicError> {
        let Some(prefix) = self.held.first().filter(|r| r.start == 0) else {
            return Ok(None);
        };
        let prefix = self.data.get(..prefix.end).unwrap_or_default();
        match prefix.first() {
            None => return Ok(None),
            Some(&CLIENT_HELLO) => {}
            // Known from the first byte: no need to wait for the rest.
            Some(_) => return Err(QuicError::NotClientHello),
        }
        let Some(&[_, a, b, c]) = prefix.first_chunk::<HANDSHAKE_HEADER_LEN>() else {
            return Ok(None);
        };
        let total = HANDSHAKE_HEADER_LEN + u32::from_be_bytes([0, a, b, c]) as usize;
        if total > self.cap {
            // Known from the header, before waiting for bytes we would refuse.
            return Err(QuicError::TooLarge);
        }
        Ok(prefix.get(..total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake ClientHello of `body` bytes: type 1, length, then 0, 1, 2...
    fn message(body: usize) -> Vec<u8> {
        let len = u32::try_from(body).expect("small").to_be_bytes();
        let mut m = vec![CLIENT_HELLO, len[1], len[2], len[3]];
        m.extend((0..body).map(|i| i as u8));
        m
    }

    #[test]
    fn fragments_in_any_order_complete_the_hello() {
        let m = message(100);
        let mut s = CryptoStream::new(1024);
        for range in [60..104, 0..2, 30..60, 2..30] {
            assert_eq!(s.hello(), Ok(None));
            s.insert(range.start as u64, &m[range]).expect("insert");
        }
        assert_eq!(s.hello(), Ok(Some(&m[..])));
        assert_eq!((s.held.len(), s.peak_pieces()), (1, 2));
    }

    #[test]
    fn retransmissions_cut_differently_merge() {
        let m = message(50);
        let mut s = CryptoStream::new(1024);
        s.insert(10, &m[10..30]).expect("first cut");
        s.insert(40, &m[40..54]).expect("first cut");
        assert_eq!(s.held.len(), 2);
        // Overlaps both pieces and the gap between them.
        s.insert(5, &m[5..45]).expect("second cut");
        assert_eq!(s.held.len(), 1);
        s.insert(0, &m[0..12]).expect("third cut");
        assert_eq!(s.hello(), Ok(Some(&m[..])));
    }

    #[test]
    fn conflicting_bytes_are_refused() {
        let m = message(50);
        let mut s = CryptoStream::new(1024);
        s.insert(0, &m[..20]).expect("insert");
        let mut other = m[10..30].to_vec();
        other[5] ^= 1;
        assert_eq!(s.insert(10, &other), Err(QuicError::ConflictingCrypto));
    }

    #[test]
    fn the_cap_holds_for_data_and_declared_length() {
        let m = message(100);
        let mut s = CryptoStream::new(64);
        assert_eq!(s.insert(60, &m[60..70]), Err(QuicError::TooLarge));
        s.insert(0, &m[..4]).expect("header fits");
        assert_eq!(s.hello(), Err(QuicError::TooLarge), "declares 104 > 64");
        assert_eq!(s.insert(u64::MAX, b"x"), Err(QuicError::TooLarge));
    }

    #[test]
    fn another_first_message_is_refused_at_its_first_byte() {
        let mut s = CryptoStream::new(64);
        s.insert(0, &[2]).expect("insert");
        assert_eq!(s.hello(), Err(QuicError::NotClientHello));
    }

    #[test]
    fn pieces_are_bounded() {
        let mut s = CryptoStream::new(4096);
        for i in 0..MAX_PIECES {
            s.insert(2 * i as u64 + 1, &[0]).expect("within bound");
        }
        assert_eq!(s.insert(1000, &[0]), Err(QuicError::TooFragmented));
    }
}
