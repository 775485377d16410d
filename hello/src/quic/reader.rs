//! `InitialReader`: datagrams in, one ClientHello out, without I/O.

use super::assemble::CryptoStream;
use super::frames::{self, Crypto};
use super::header::{self, PacketType, QuicVersion};
use super::keys::InitialKeys;
use super::{MIN_DATAGRAM, QuicError};
use crate::Framed;

/// How far the datagrams fed so far get towards a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicProgress<'a> {
    /// The CRYPTO stream does not hold a whole ClientHello yet: wait for
    /// more datagrams (the only answer until it does).
    NeedMore,
    /// A whole ClientHello, for [`HelloSummary::parse`](crate::HelloSummary::parse).
    Complete(Framed<'a>),
}

/// Reads a QUIC client's first flight, one datagram at a time, until its
/// Initial CRYPTO stream holds a whole ClientHello.
///
/// The first datagram it accepts fixes the connection: its version, its
/// original Destination Connection ID (whose initial keys decrypt all the
/// rest) and its Source Connection ID. A later datagram whose first Initial
/// names another DCID or version is refused with
/// [`QuicError::DcidMismatch`] and changes nothing: a client keeps its DCID
/// until the server answers (RFC 9000 §7.2), so it is another connection's,
/// and the host can hand it to that one.
///
/// A datagram is read whole before anything is kept, so every error but a
/// [final](QuicError::is_final) one leaves the reader as it was. Once
/// complete, `feed` reads nothing more and answers `Complete` again: later
/// datagrams belong to the connection, for the host to replay.
#[derive(Debug)]
pub struct InitialReader {
    flow: Option<Flow>,
    stream: CryptoStream,
    /// The largest packet number read, to decode truncated ones.
    largest: Option<u64>,
    failed: Option<QuicError>,
}

/// What the first accepted datagram fixed.
#[derive(Debug)]
struct Flow {
    version: QuicVersion,
    dcid: Vec<u8>,
    scid: Vec<u8>,
    keys: InitialKeys,
}

/// One datagram, read and decrypted but not yet kept.
struct Read<'b> {
    /// The flow this datagram would start, if the reader had none.
    new_flow: Option<Flow>,
    crypto: Vec<Crypto<'b>>,
    largest: Option<u64>,
}

impl InitialReader {
    /// A reader that keeps at most `cap` bytes of CRYPTO stream: the
    /// ClientHello must lie within its first `cap` bytes, as a TCP hello
    /// must within `frame`'s cap.
    pub fn new(cap: usize) -> Self {
        Self {
            flow: None,
            stream: CryptoStream::new(cap),
            largest: None,
            failed: None,
        }
    }

    /// Read one UDP datagram as the client sent it.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<QuicProgress<'_>, QuicError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.stream.hello().ok().flatten().is_none() {
            // Decrypted in place: a copy, as the caller may hold the
            // datagram for replay.
            let mut buf = datagram.to_vec();
            let read = self.read(&mut buf)?;
            if let Err(error) = self.keep(read) {
                self.failed = Some(error.clone());
                return Err(error);
            }
        }
        match self.stream.hello() {
            Ok(Some(message)) => Ok(QuicProgress::Complete(Framed::quic(message))),
            Ok(None) => Ok(QuicProgress::NeedMore),
            Err(error) => {
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    /// The QUIC version, once a datagram was accepted.
    pub fn version(&self) -> Option<QuicVersion> {
        self.flow.as_ref().map(|f| f.version)
    }

    /// The client's original Destination Connection ID, once a datagram was
    /// accepted: with the client's address, what a host keys the flow by.
    pub fn dcid(&self) -> Option<&[u8]> {
        self.flow.as_ref().map(|f| f.dcid.as_slice())
    }

    /// The client's Source Connection ID (possibly empty), once a datagram
    /// was accepted: the DCID of what the server sends back.
    pub fn scid(&self) -> Option<&[u8]> {
        self.flow.as_ref().map(|f| f.scid.as_slice())
    }

    /// Parse and decrypt every packet of `buf`, changing nothing.
    fn read<'b>(&self, buf: &'b mut [u8]) -> Result<Read<'b>, QuicError> {
        // The order of the checks chooses the reason a datagram gets: a
        // client's 0-RTT-only datagram need not be padded, so it is
        // `not_initial` rather than `short_datagram`.
        let (version, kind) = header::peek(buf)?.ok_or(QuicError::NotInitial)?;
        if kind != PacketType::Initial {
            return Err(QuicError::NotInitial);
        }
        if buf.len() < MIN_DATAGRAM {
            return Err(QuicError::ShortDatagram);
        }
        let first = header::parse(buf)?;
        let new_flow = match &self.flow {
            Some(flow) if flow.version != version || flow.dcid != first.dcid => {
                return Err(QuicError::DcidMismatch);
            }
            Some(_) => None,
            None => Some(Flow {
                version,
                dcid: first.dcid.to_vec(),
                scid: first.scid.to_vec(),
                keys: InitialKeys::new(version, first.dcid)?,
            }),
        };
        let (keys, dcid) = match (&new_flow, &self.flow) {
            (Some(flow), _) | (None, Some(flow)) => (&flow.keys, flow.dcid.clone()),
            // Cannot happen (no flow means `new_flow` was made above); an
            // error rather than a panic all the same.
            (None, None) => return Err(QuicError::DecryptFailed),
        };
        let mut crypto = Vec::new();
        let mut largest = self.largest;
        let mut close = false;
        // The first Initial that did not decrypt, reported if none did.
        let mut undecrypted = None;
        let mut opened_any = false;
        let mut rest: &'b mut [u8] = buf;
        // Coalesced packets (RFC 9000 §12.2), each sized by its Length.
        // The walk stops at padding, a short header, another version, or a
        // header it cannot size (the first one parsed above): none of that
        // can be, or lead to, this connection's Initial.
        while header::peek(rest)
            .ok()
            .flatten()
            .is_some_and(|(v, _)| v == version)
        {
            let Ok(packet) = header::parse(rest) else {
                break;
            };
            let (kind, len, pn_offset) = (packet.kind, packet.len, packet.pn_offset);
            // §12.2: ignore packets for another connection ID; 0-RTT and
            // Handshake packets are not ours to read.
            let ours = kind == PacketType::Initial && packet.dcid == dcid.as_slice();
            let Some((this, tail)) = std::mem::take(&mut rest).split_at_mut_checked(len) else {
                break;
            };
            rest = tail;
            if !ours {
                continue;
            }
            // §12.2 again: a packet that fails to decrypt is dropped, and
            // the ones after it are still read.
            let opened = match keys.open(this, pn_offset, largest) {
                Ok(opened) => opened,
                Err(error) => {
                    undecrypted.get_or_insert(error);
                    continue;
                }
            };
            opened_any = true;
            close |= frames::read(opened.payload, &mut crypto)?.close;
            largest = Some(largest.map_or(opened.packet_number, |l| l.max(opened.packet_number)));
        }
        if !opened_any {
            return Err(undecrypted.unwrap_or(QuicError::DecryptFailed));
        }
        if close {
            return Err(QuicError::ClientClosed);
        }
        Ok(Read {
            new_flow,
            crypto,
            largest,
        })
    }

    /// Keep what `read` found. An error here is final.
    fn keep(&mut self, read: Read<'_>) -> Result<(), QuicError> {
        if let Some(flow) = read.new_flow {
            self.flow = Some(flow);
        }
        self.largest = read.largest;
        for fragment in read.crypto {
            self.stream.insert(fragment.offset, fragment.data)?;
        }
        Ok(())
    }

    /// The most separate pieces of CRYPTO stream held at once (tests).
    #[cfg(test)]
    pub(super) fn peak_pieces(&self) -> usize {
        self.stream.peak_pieces()
    }
}
