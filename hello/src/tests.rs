//! Unit tests for `hello`, plus helpers shared by the corpus and framing
//! tests in `tests/`.

mod corpus; // external ClientHello corpus and edge cases (shared/testdata)
mod fingerprints; // JA3 / JA4 against the corpus's stored values
mod framing; // prefixes, re-recorded hellos, caps, peerbench captures
mod parsing; // extension block, SNI, ALPN and list rules, JSON output

use std::path::PathBuf;

use super::{HelloError, HelloSummary, Progress, frame};

/// A cap large enough for every hello in the corpus (the largest is 21.6 KB).
pub(super) const CAP: usize = 64 * 1024;

/// The repo's `shared/` directory; `LIMEN_SHARED` overrides it for builds
/// whose manifest dir is elsewhere.
pub(super) fn shared_dir() -> PathBuf {
    std::env::var_os("LIMEN_SHARED").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
        PathBuf::from,
    )
}

/// Everything `frame` + `parse` can conclude about a byte string.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    NeedMore,
    NotTls,
    TooLarge,
    Malformed,
    Parsed(Box<HelloSummary>),
}

pub(super) fn outcome(bytes: &[u8], cap: usize) -> Outcome {
    match frame(bytes, cap) {
        Ok(Progress::NeedMore) => Outcome::NeedMore,
        Ok(Progress::NotTls) => Outcome::NotTls,
        Ok(Progress::Complete(framed)) => match HelloSummary::parse(&framed) {
            Ok(summary) => Outcome::Parsed(Box::new(summary)),
            Err(HelloError::Malformed(_)) => Outcome::Malformed,
            Err(e) => panic!("parse gave {e:?}"),
        },
        Err(HelloError::TooLarge) => Outcome::TooLarge,
        Err(HelloError::Malformed(_)) => Outcome::Malformed,
    }
}

pub(super) fn summarize(bytes: &[u8]) -> HelloSummary {
    match outcome(bytes, CAP) {
        Outcome::Parsed(summary) => *summary,
        other => panic!("expected a parsed hello, got {other:?}"),
    }
}

/// The handshake message of a hello that frames completely.
pub(super) fn message_of(bytes: &[u8]) -> Vec<u8> {
    match frame(bytes, CAP) {
        Ok(Progress::Complete(framed)) => framed.message().to_vec(),
        other => panic!("expected a complete hello, got {other:?}"),
    }
}

/// Carry `message` in records of `version` whose bodies have the given sizes
/// (the last record takes whatever is left).
pub(super) fn rerecord(
    version: u16,
    message: &[u8],
    sizes: impl IntoIterator<Item = usize>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = message;
    let mut sizes = sizes.into_iter();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (body, tail) = rest.split_at(n);
        out.push(0x16);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&u16::try_from(n).expect("record size").to_be_bytes());
        out.extend_from_slice(body);
        rest = tail;
    }
    out
}

/// A one-record ClientHello with the given extensions (`None`: no extension
/// block at all, as clients from before TLS extensions send).
pub(super) fn hello_with(extensions: Option<&[(u16, &[u8])]>) -> Vec<u8> {
    let tail = extensions.map(|list| {
        let block: Vec<u8> = list
            .iter()
            .flat_map(|(kind, data)| {
                let len = u16::try_from(data.len())
                    .expect("extension size")
                    .to_be_bytes();
                [&kind.to_be_bytes()[..], &len, data].concat()
            })
            .collect();
        [
            &u16::try_from(block.len()).expect("block").to_be_bytes()[..],
            &block,
        ]
        .concat()
    });
    hello_with_tail(&tail.unwrap_or_default())
}

/// A one-record ClientHello whose body ends with `tail`, taken verbatim.
pub(super) fn hello_with_tail(tail: &[u8]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(tail);
    let mut message = vec![1];
    message.extend_from_slice(&u32::try_from(body.len()).expect("len").to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    rerecord(0x0301, &message, [])
}

/// server_name extension body with one entry of each (type, name).
pub(super) fn sni_body(entries: &[(u8, &[u8])]) -> Vec<u8> {
    let list: Vec<u8> = entries
        .iter()
        .flat_map(|(kind, name)| {
            let len = u16::try_from(name.len()).expect("name").to_be_bytes();
            [&[*kind][..], &len, name].concat()
        })
        .collect();
    [
        &u16::try_from(list.len()).expect("list").to_be_bytes()[..],
        &list,
    ]
    .concat()
}

#[test]
fn not_tls_inputs_go_to_the_policy_without_a_hello() {
    assert_eq!(outcome(b"", CAP), Outcome::NeedMore);
    for input in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x80\xb3\x01\x03\x03",
    ] {
        assert_eq!(outcome(input, CAP), Outcome::NotTls, "{input:?}");
    }
}

#[test]
fn record_header_faults_are_malformed() {
    let hello = hello_with(Some(&[]));
    let message = message_of(&hello);
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "version 2.0",
            [&[0x16, 0x02, 0x00, 0x00, 0x05][..], &message].concat(),
        ),
        ("empty record", vec![0x16, 0x03, 0x01, 0x00, 0x00]),
        ("record too long", vec![0x16, 0x03, 0x01, 0x41, 0x01]),
        (
            "not client_hello",
            [&hello[..5], &[2], &hello[6..]].concat(),
        ),
        (
            "alert mid-hello",
            [
                &rerecord(0x0301, &message, [10])[..15],
                &[0x15, 3, 3, 0, 2, 2, 40],
            ]
            .concat(),
        ),
        (
            "bad 2nd version",
            [&rerecord(0x0301, &message, [10])[..15], &[0x16, 4]].concat(),
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(outcome(&bytes, CAP), Outcome::Malformed, "{what}");
    }
}

#[test]
fn bytes_after_the_hello_stay_with_the_stream() {
    let hello = hello_with(Some(&[]));
    let mut bytes = hello.clone();
    bytes.extend_from_slice(b"\x14\x03\x03\x00\x01\x01early data");
    let Ok(Progress::Complete(framed)) = frame(&bytes, CAP) else {
        panic!("not complete")
    };
    assert_eq!((framed.wire_len(), framed.records()), (hello.len(), 1));
    // One record: the message is borrowed from the read buffer, not copied.
    assert!(std::ptr::eq(framed.message().as_ptr(), bytes[5..].as_ptr()));
    // A record that goes on past the message: complete without its rest.
    let mut long = hello.clone();
    long[4] += 7;
    long.extend_from_slice(&[0x10, 0, 0, 3, 1, 2]);
    let Ok(Progress::Complete(framed)) = frame(&long, CAP) else {
        panic!("not complete")
    };
    assert_eq!(framed.wire_len(), hello.len());
    assert_eq!(framed.message(), &hello[5..]);
}

#[test]
fn cap_fills_with_tiny_records() {
    // 1-byte records: six wire bytes per message byte, far past the estimate.
    let message = message_of(&hello_with(Some(&[])));
    let bytes = rerecord(0x0301, &message, std::iter::repeat(1));
    let cap = bytes.len() - 1;
    assert_eq!(outcome(&bytes[..cap - 1], cap), Outcome::NeedMore);
    assert_eq!(outcome(&bytes[..cap], cap), Outcome::TooLarge);
    assert_eq!(outcome(&bytes, cap), Outcome::TooLarge);
    assert!(
        matches!(outcome(&bytes, cap + 1), Outcome::Parsed(s) if s.record_count() as usize == message.len())
    );
}

#[test]
fn error_reasons_are_metric_labels() {
    assert_eq!(HelloError::TooLarge.reason(), "too_large");
    assert_eq!(HelloError::Malformed("x").reason(), "malformed");
}
