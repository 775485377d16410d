//! The lists a [`HelloSummary`](super::HelloSummary) holds, stored so that
//! parsing a hello allocates twice, not once per list: every codepoint list
//! end to end in one `Vec<u16>`, and the ALPN names as sent.

use super::parse;

/// The codepoint lists of a hello.
#[derive(Debug, Clone, Copy)]
pub(crate) enum List {
    CipherSuites,
    Extensions,
    SupportedVersions,
    SupportedGroups,
    KeyShareGroups,
    SignatureAlgorithms,
    EcPointFormats,
}

const LISTS: usize = List::EcPointFormats as usize + 1;

/// Every codepoint list, end to end, and where each one lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Codes {
    codes: Vec<u16>,
    spans: [(u32, u32); LISTS],
}

impl Codes {
    /// Room for `capacity` codes, so filling never grows the vector.
    pub(crate) fn with_capacity(capacity: usize) -> Codes {
        Codes {
            codes: Vec::with_capacity(capacity),
            spans: [(0, 0); LISTS],
        }
    }

    /// `list`, in wire order (empty when the hello did not send it).
    pub(crate) fn get(&self, list: List) -> &[u16] {
        let (start, end) = self.spans[list as usize];
        self.codes.get(start as usize..end as usize).unwrap_or(&[])
    }

    /// Fill `list` with `codes`.
    pub(crate) fn extend(&mut self, list: List, codes: impl IntoIterator<Item = u16>) {
        let filled = self.fill(list, |out| {
            out.extend(codes);
            Ok::<_, std::convert::Infallible>(())
        });
        let Ok(()) = filled;
    }

    /// Fill `list` by appending its codes in `fill`; each list is filled
    /// once (the extension walk refuses repeated types).
    pub(crate) fn fill<E>(
        &mut self,
        list: List,
        fill: impl FnOnce(&mut Vec<u16>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.codes.len();
        fill(&mut self.codes)?;
        // A hello is at most 16 MiB (a 24-bit length), so are its lists.
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.spans[list as usize] = (at(start), at(self.codes.len()));
        Ok(())
    }
}

/// ALPN's name list as sent (its length prefix removed), every name checked
/// non-empty, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AlpnList {
    list: Box<[u8]>,
    count: usize,
}

impl AlpnList {
    /// Decode an ALPN extension's body.
    pub(crate) fn parse(data: &[u8]) -> Result<AlpnList, super::HelloError> {
        let (list, count) = parse::alpn(data)?;
        Ok(AlpnList {
            list: list.into(),
            count,
        })
    }

    pub(crate) fn names(&self) -> Alpn<'_> {
        Alpn {
            rest: &self.list,
            left: self.count,
        }
    }
}

/// ALPN protocol names in client preference order, each non-empty.
#[derive(Debug, Clone)]
pub struct Alpn<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Alpn<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // The list was checked when parsed: each name is a one-byte length
        // and that many bytes.
        let (&n, rest) = self.rest.split_first()?;
        let (name, rest) = rest.split_at_checked(usize::from(n))?;
        self.rest = rest;
        self.left = self.left.saturating_sub(1);
        Some(name)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Alpn<'_> {}
