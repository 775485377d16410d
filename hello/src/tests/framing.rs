//! Framing across reads and records: prefixes, re-recorded hellos, the cap,
//! and the recorded hellos of the peerbench kit.

use std::path::PathBuf;

use serde_json::Value;

use super::corpus::{row_bytes, rows};
use super::{CAP, Outcome, message_of, outcome, rerecord, shared_dir, summarize};
use crate::{HelloSummary, Progress, frame};

/// Every valid hello we have: corpus rows, edge cases that parse, peerbench.
fn valid_hellos() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for row in rows("corpus.jsonl").iter().chain(&rows("edge_cases.jsonl")) {
        let bytes = row_bytes(row, "record_hex");
        if matches!(outcome(&bytes, CAP), Outcome::Parsed(_)) {
            out.push((row["id"].as_str().unwrap_or("?").to_owned(), bytes));
        }
    }
    out.extend(
        peerbench()
            .into_iter()
            .map(|(p, b)| (p.display().to_string(), b)),
    );
    out
}

fn peerbench() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = shared_dir().join("peerbench/hello");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("read")))
        .collect()
}

/// The summary as JSON without the record count, which re-recording changes.
fn comparable(summary: &HelloSummary) -> Value {
    let mut json = serde_json::to_value(summary).expect("serialises");
    json.as_object_mut().expect("object").remove("record_count");
    json
}

#[test]
fn every_strict_prefix_needs_more() {
    let hellos = valid_hellos();
    assert!(hellos.len() > 400, "only {} hellos found", hellos.len());
    for (name, bytes) in &hellos {
        for end in 0..bytes.len() {
            let got = frame(&bytes[..end], CAP);
            assert!(
                matches!(got, Ok(Progress::NeedMore)),
                "{name}[..{end}]: {got:?}"
            );
        }
    }
}

#[test]
fn rerecorded_hellos_parse_the_same() {
    for (name, bytes) in valid_hellos() {
        let original = summarize(&bytes);
        let message = message_of(&bytes);
        for records in 2..=6 {
            let size = message.len().div_ceil(records);
            let wire = rerecord(original.record_version(), &message, std::iter::repeat(size));
            let expect = message.len().div_ceil(size);
            let Ok(Progress::Complete(f)) = frame(&wire, CAP) else {
                panic!("{name}/{records}")
            };
            assert_eq!(
                (f.records() as usize, f.wire_len()),
                (expect, wire.len()),
                "{name}"
            );
            assert_eq!(f.message(), message, "{name}");
            let summary = HelloSummary::parse(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(comparable(&summary), comparable(&original), "{name}");
            assert_eq!(summary.record_count() as usize, expect);
        }
    }
}

#[test]
fn one_byte_records_and_their_prefixes() {
    // The handshake header itself spans four records here.
    let small = std::fs::read(shared_dir().join("peerbench/hello/small-a.test.bin")).expect("read");
    let message = message_of(&small);
    let wire = rerecord(0x0301, &message, std::iter::repeat(1));
    for end in 0..wire.len() {
        assert_eq!(outcome(&wire[..end], CAP), Outcome::NeedMore, "[..{end}]");
    }
    let summary = summarize(&wire);
    assert_eq!(summary.record_count() as usize, message.len());
    assert_eq!(comparable(&summary), comparable(&summarize(&small)));
}

#[test]
fn peerbench_hellos_route_by_their_file_names() {
    let files = peerbench();
    assert_eq!(files.len(), 22);
    for (path, bytes) in files {
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .expect("utf-8 name");
        let stem = file.strip_suffix(".bin").expect(".bin");
        let (kind, name) = stem.split_once('-').unwrap_or((stem, "a.test"));
        let summary = summarize(&bytes);
        // "B.TEST" and "b.test." must route like "b.test".
        let want =
            (name != "nosni").then(|| name.to_ascii_lowercase().trim_end_matches('.').to_owned());
        let got = summary.sni().map(|n| AsRef::<str>::as_ref(n).to_owned());
        assert_eq!(got, want, "{file}");
        let records = if kind.ends_with("2rec") { 2 } else { 1 };
        assert_eq!(summary.record_count(), records, "{file}");
        let alpn: &[&[u8]] = if kind.starts_with("large") {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        assert_eq!(summary.alpn().collect::<Vec<_>>(), alpn, "{file}");
        if kind.starts_with("large") {
            assert!(summary.ech(), "{file}");
            assert!(
                summary.key_share_groups().contains(&0x11ec),
                "{file}: X25519MLKEM768"
            );
            assert_eq!(summary.hello_length(), 1835, "{file}");
        }
    }
}

#[test]
fn oversized_hello_is_refused_from_its_header() {
    let large = std::fs::read(shared_dir().join("peerbench/hello/large-b.test.bin")).expect("read");
    let split =
        std::fs::read(shared_dir().join("peerbench/hello/large2rec-b.test.bin")).expect("read");
    assert_eq!(large.len(), 1840);
    for bytes in [&large, &split] {
        // Record header + handshake header = 9 bytes reveal the 1835-byte message.
        for end in 0..9 {
            assert_eq!(outcome(&bytes[..end], 1024), Outcome::NeedMore, "[..{end}]");
        }
        for end in [9, 100, 1023, 1024, bytes.len()] {
            assert_eq!(outcome(&bytes[..end], 1024), Outcome::TooLarge, "[..{end}]");
        }
    }
    // The cap is inclusive of the last byte, and uses the fewest headers possible.
    assert!(matches!(outcome(&large, large.len()), Outcome::Parsed(_)));
    assert_eq!(outcome(&large[..9], large.len() - 1), Outcome::TooLarge);
    assert_eq!(outcome(&split, split.len() - 1), Outcome::TooLarge);
}

#[test]
fn mutated_hellos_never_panic() {
    // Every single-byte change of a few hellos (each length field included)
    // must end in some defined outcome; debug builds also trap overflow here.
    let dir = shared_dir().join("peerbench/hello");
    for file in [
        "small2rec-a.test.bin",
        "large2rec-b.test.bin",
        "small-nosni.bin",
    ] {
        let bytes = std::fs::read(dir.join(file)).expect("read");
        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut mutated = bytes.clone();
                mutated[at] ^= flip;
                let _ = outcome(&mutated, CAP);
                let _ = outcome(&mutated, at + 1);
            }
        }
    }
}
