//! The captured first flights of `shared/testdata/quic` (see its README):
//! each gives the SNI and ALPN the README states, from the first flight,
//! from the retransmissions alone and in every order of its datagrams.

use super::super::assemble::MAX_PIECES;
use super::{CAP, feed_all, summary};
use crate::quic::{InitialReader, QuicError, QuicProgress};
use crate::tests::shared_dir;

fn capture(name: &str) -> Vec<u8> {
    let path = shared_dir().join("testdata/quic").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (set LIMEN_SHARED?)", path.display()))
}

/// One client's datagrams and what its README row says of them.
struct Flight {
    first: &'static [&'static str],
    retransmissions: &'static [&'static str],
    sni: &'static str,
    hello_length: u32,
}

const CHROMIUM: Flight = Flight {
    first: &["chromium148-pq-1of2.bin", "chromium148-pq-2of2.bin"],
    retransmissions: &[
        "chromium148-pq-retx-a.bin",
        "chromium148-pq-retx-b.bin",
        "chromium148-pq-retx-c.bin",
    ],
    sni: "a.test",
    hello_length: 1773,
};
const AIOQUIC_SMALL: Flight = Flight {
    first: &["aioquic172-small.bin"],
    retransmissions: &[],
    sni: "b.test",
    hello_length: 467,
};
const AIOQUIC_BIG: Flight = Flight {
    first: &["aioquic172-big-1of2.bin", "aioquic172-big-2of2.bin"],
    retransmissions: &[],
    sni: "c.test",
    hello_length: 1721,
};
const FLIGHTS: [Flight; 3] = [CHROMIUM, AIOQUIC_SMALL, AIOQUIC_BIG];

fn load(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| capture(n)).collect()
}

/// Complete from `datagrams` fed in order, and check it is the README's hello.
fn assert_hello(flight: &Flight, datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut reader = InitialReader::new(CAP);
    let message = feed_all(&mut reader, datagrams.iter().map(Vec::as_slice))
        .expect("no error")
        .unwrap_or_else(|| panic!("{}: incomplete", flight.sni));
    let hello = summary(&mut reader);
    assert_eq!(hello.sni().map(AsRef::as_ref), Some(flight.sni));
    assert_eq!(hello.alpn().next(), Some(&b"h3"[..]));
    assert_eq!(hello.hello_length(), flight.hello_length);
    let ja4 = &hello.fingerprints().ja4;
    assert!(ja4.starts_with("q13d"), "{ja4}");
    message
}

#[test]
fn first_flights_give_the_readme_hellos() {
    for flight in &FLIGHTS {
        assert_hello(flight, &load(flight.first));
    }
    let big = summary_of(&load(AIOQUIC_BIG.first));
    // Six 200-byte names were added after `h3`.
    assert_eq!(big.alpn().len(), 7);
}

fn summary_of(datagrams: &[Vec<u8>]) -> crate::HelloSummary {
    let mut reader = InitialReader::new(CAP);
    feed_all(&mut reader, datagrams.iter().map(Vec::as_slice)).expect("no error");
    summary(&mut reader)
}

#[test]
fn chromium_retransmissions_alone_give_the_same_hello() {
    let first = assert_hello(&CHROMIUM, &load(CHROMIUM.first));
    let again = assert_hello(&CHROMIUM, &load(CHROMIUM.retransmissions));
    assert_eq!(first, again);
}

/// No single packet of a two-packet hello completes it.
#[test]
fn a_lone_packet_of_a_split_hello_needs_more() {
    for name in CHROMIUM
        .first
        .iter()
        .chain(CHROMIUM.retransmissions)
        .chain(AIOQUIC_BIG.first)
    {
        let mut reader = InitialReader::new(CAP);
        assert_eq!(
            reader.feed(&capture(name)),
            Ok(QuicProgress::NeedMore),
            "{name}"
        );
        assert!(reader.dcid().is_some(), "{name}: accepted");
    }
}

/// Chromium giving up: an Initial with only CONNECTION_CLOSE. No hello, a
/// reason of its own, and the reader untouched.
#[test]
fn chromium_close_alone_says_the_client_closed() {
    let mut reader = InitialReader::new(CAP);
    let close = capture("chromium148-close.bin");
    assert_eq!(reader.feed(&close), Err(QuicError::ClientClosed));
    assert_eq!(
        reader.feed(&close).map_err(|e| e.reason()),
        Err("client_closed")
    );
    assert_eq!(reader.dcid(), None, "nothing was kept");
}

/// Every order of every datagram of a connection, the close included, gives
/// the same hello; and the pieces held at any time stay far under the bound.
#[test]
fn every_order_of_the_datagrams_gives_the_same_hello() {
    let mut most_pieces = 0;
    for flight in &FLIGHTS {
        let mut all = load(flight.first);
        all.extend(load(flight.retransmissions));
        if flight.sni == CHROMIUM.sni {
            all.push(capture("chromium148-close.bin"));
        }
        let expected = assert_hello(flight, &load(flight.first));
        let mut orders = 0;
        permutations(all.len(), &mut |order| {
            orders += 1;
            let mut reader = InitialReader::new(CAP);
            let mut got = None;
            for &i in order {
                match reader.feed(&all[i]) {
                    Ok(QuicProgress::Complete(framed)) => {
                        got.get_or_insert_with(|| framed.message().to_vec());
                    }
                    Ok(QuicProgress::NeedMore) | Err(QuicError::ClientClosed) => {}
                    Err(e) => panic!("{}: order {order:?}: {e}", flight.sni),
                }
                most_pieces = most_pieces.max(reader.peak_pieces());
            }
            assert_eq!(
                got.as_ref(),
                Some(&expected),
                "{}: order {order:?}",
                flight.sni
            );
        });
        assert_eq!(orders, (1..=all.len()).product::<usize>());
    }
    eprintln!("most pieces held at once: {most_pieces}");
    assert!(
        most_pieces <= MAX_PIECES / 4,
        "{most_pieces} pieces held at once"
    );
}

/// Any mix of Chromium's first flight and retransmissions that completes
/// gives the one hello, and the first flight is such a mix.
#[test]
fn every_mix_of_chromium_packets_gives_one_hello_or_waits() {
    let mut all = load(CHROMIUM.first);
    all.extend(load(CHROMIUM.retransmissions));
    let expected = assert_hello(&CHROMIUM, &load(CHROMIUM.first));
    let mut completed = 0;
    for mask in 1u32..1 << all.len() {
        let chosen = (0..all.len()).filter(|i| mask & 1 << i != 0);
        let mut reader = InitialReader::new(CAP);
        match feed_all(&mut reader, chosen.map(|i| all[i].as_slice())) {
            Ok(Some(message)) => {
                assert_eq!(message, expected, "mix {mask:#b}");
                completed += 1;
            }
            Ok(None) => assert_ne!(mask, (1 << all.len()) - 1, "all five complete it"),
            Err(e) => panic!("mix {mask:#b}: {e}"),
        }
    }
    assert!(completed >= 2, "first flight and retransmissions at least");
}

/// Heap's algorithm: call `visit` with every ordering of `0..n`.
fn permutations(n: usize, visit: &mut impl FnMut(&[usize])) {
    let mut order: Vec<usize> = (0..n).collect();
    let mut c = vec![0; n];
    visit(&order);
    let mut i = 0;
    while i < n {
        if c[i] < i {
            order.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
            visit(&order);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}
