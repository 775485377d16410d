//! A byte cursor that knows QUIC's variable-length integers (RFC 9000 §16).
//! Every read returns `None` instead of running past the end, so the header
//! and frame parsers turn a short buffer into their own error.

/// Reads forward through a borrowed buffer.
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        let bytes: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    /// A variable-length integer: the two high bits of the first byte give
    /// its size (1, 2, 4 or 8 bytes), the rest is the value, big-endian.
    pub(super) fn varint(&mut self) -> Option<u64> {
        let first = *self.buf.get(self.pos)?;
        let len = 1usize << (first >> 6);
        let bytes = self.take(len)?;
        let value = bytes
            .iter()
            .skip(1)
            .fold(u64::from(first & 0x3f), |v, b| (v << 8) | u64::from(*b));
        Some(value)
    }

    /// A varint used as a length of bytes that follow: `None` when it does
    /// not fit in `usize` (it then cannot fit in the buffer either).
    pub(super) fn varint_len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn varints_decode_as_rfc_9000_appendix_a_1_shows() {
        // The four examples of RFC 9000 §A.1.
        for (bytes, value) in [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c][..],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d][..], 494_878_333),
            (&[0x7b, 0xbd][..], 15_293),
            (&[0x25][..], 37),
        ] {
            let mut c = Cursor::new(bytes);
            assert_eq!(c.varint(), Some(value));
            assert_eq!(c.pos(), bytes.len());
        }
        assert_eq!(Cursor::new(&[0x40]).varint(), None, "truncated varint");
    }
}
