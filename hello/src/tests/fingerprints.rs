//! JA3 and JA4 against the values other projects stored for the corpus
//! (`shared/testdata/clienthello/corpus.jsonl`).

use serde_json::Value;

use super::corpus::{row_bytes, rows};
use super::{CAP, Outcome, outcome};
use crate::HelloSummary;

fn parsed(row: &Value) -> HelloSummary {
    match outcome(&row_bytes(row, "record_hex"), CAP) {
        Outcome::Parsed(summary) => *summary,
        other => panic!("{}: {other:?}", row["id"]),
    }
}

/// Stored by FoxIO's reference implementations or by nDPI (where nDPI
/// agrees with an independent computation): the values to equal.
fn trusted(row: &Value) -> bool {
    let provenance = row["ja4_provenance"].as_str().unwrap_or_default();
    provenance.starts_with("foxio") || provenance.starts_with("nDPI stored")
}

#[test]
fn every_corpus_row_has_the_reference_ja3() {
    let mut failures = Vec::new();
    let rows = rows("corpus.jsonl");
    for row in &rows {
        let f = parsed(row).fingerprints().clone();
        let (string, md5) = (&row["ja3"]["string"], &row["ja3"]["md5"]);
        if f.ja3 != *string || f.ja3_hash != *md5 {
            failures.push(format!(
                "{}: {} {} / row {string} {md5}",
                row["id"], f.ja3, f.ja3_hash
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn every_trusted_corpus_row_has_the_reference_ja4() {
    let mut failures = Vec::new();
    let rows = rows("corpus.jsonl");
    let trusted_rows: Vec<&Value> = rows.iter().filter(|r| trusted(r)).collect();
    assert!(
        trusted_rows.len() >= 260,
        "{} trusted rows",
        trusted_rows.len()
    );
    for row in trusted_rows {
        let f = parsed(row).fingerprints().clone();
        // Where FoxIO's stored output departs from JA4.md (non-alphanumeric
        // ALPN bytes 0xbaad: stored `99`, the spec's first and last hex
        // digits give `bd`), the row carries `ja4_spec` and we follow the spec.
        let (ja4, ja4_r) = match row["ja4_spec"].as_str() {
            Some(spec) => {
                let stored = row["ja4"].as_str().unwrap_or_default();
                let raw = row["ja4_r"].as_str().unwrap_or_default();
                (spec.to_owned(), raw.replacen(&stored[..10], &spec[..10], 1))
            }
            None => (
                row["ja4"].as_str().unwrap_or_default().to_owned(),
                row["ja4_r"].as_str().unwrap_or_default().to_owned(),
            ),
        };
        // One nDPI row stores no JA4_r (its `ja4_r` is empty).
        if f.ja4 != ja4 || (!ja4_r.is_empty() && f.ja4_r != ja4_r) {
            failures.push(format!(
                "{}:\n  ours {}\n  row  {ja4}\n  ours {}\n  row  {ja4_r}",
                row["id"], f.ja4, f.ja4_r
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Rows without a trustworthy stored JA4 carry an independent computation:
/// a cross-check, which we meet too.
#[test]
fn untrusted_corpus_rows_match_the_cross_check() {
    let rows = rows("corpus.jsonl");
    let mut failures = Vec::new();
    for row in rows.iter().filter(|r| !trusted(r)) {
        let f = parsed(row).fingerprints().clone();
        if f.ja4 != row["ja4"] || f.ja4_r != row["ja4_r"] {
            failures.push(format!("{}: ours {} row {}", row["id"], f.ja4, row["ja4"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn ech_and_esni_flags_match_the_rows() {
    let rows = rows("corpus.jsonl");
    let (mut ech, mut esni) = (0, 0);
    for row in &rows {
        let s = parsed(row);
        let features = &row["features"];
        let want_ech = features["ech_outer_extension_fe0d"]
            .as_bool()
            .unwrap_or(false);
        let want_esni = features["esni_draft_ffce"].as_bool().unwrap_or(false);
        assert_eq!(s.ech(), want_ech, "{}", row["id"]);
        // Every ECH hello a client sends in the clear is an outer one.
        assert_eq!(s.ech_outer(), want_ech, "{}", row["id"]);
        assert_eq!(s.esni(), want_esni, "{}", row["id"]);
        ech += usize::from(want_ech);
        esni += usize::from(want_esni);
    }
    assert!(
        ech >= 5 && esni >= 3,
        "ech {ech}, esni {esni}: the corpus has both"
    );
}
