//! Every error code limen emits is documented, and every documented code is
//! still emitted: the codes (`E` or `P` and three digits) in string literals
//! under `host/src`, the binary's included, must be exactly the first column
//! of `docs/errors.md`'s table. Operators look a code up there; a new code
//! without a row, or a row for a code that is gone, fails here.
//!
//! `cargo test -p limen --test codes`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Codes = BTreeSet<String>;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, recursively: files move between folders,
/// and the binary (`bin/`) emits codes of its own.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The contents of the string literals in Rust source `code`. Comments are
/// skipped (a doc comment may name a code limen does not emit), and so are
/// char literals, so that `'"'` does not open a string.
fn literals(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if at(i + 1) == '/' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                // Block comments nest in Rust.
                let (mut depth, mut j) = (1, i + 2);
                while j < c.len() && depth > 0 {
                    match (c[j], at(j + 1)) {
                        ('/', '*') => (depth, j) = (depth + 1, j + 2),
                        ('*', '/') => (depth, j) = (depth - 1, j + 2),
                        _ => j += 1,
                    }
                }
                i = j;
            }
            // A char literal ('x', '\'', '\u{..}'), or a lifetime ('a).
            '\'' if at(i + 1) == '\\' => {
                let mut j = i + 3;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            }
            '\'' if at(i + 2) == '\'' => i += 3,
            // A raw string, r"..." or r#"..."# (quotes inside do not end it).
            'r' if (i == 0 || !ident(c[i - 1]) || c[i - 1] == 'b')
                && matches!(at(i + 1), '"' | '#') =>
            {
                let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
                if at(i + 1 + hashes) != '"' {
                    i += 1; // a raw identifier, r#type
                    continue;
                }
                let close: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let start = i + 2 + hashes;
                let mut j = start;
                while j < c.len() && !c[j..].starts_with(&close) {
                    j += 1;
                }
                out.push(c[start..j.min(c.len())].iter().collect());
                i = j + close.len();
            }
            '"' => {
                let mut j = i + 1;
                while j < c.len() && c[j] != '"' {
                    j += if c[j] == '\\' { 2 } else { 1 };
                }
                out.push(c[i + 1..j.min(c.len())].iter().collect());
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Codes in `text`: `E` or `P`, then exactly three digits, not part of a
/// longer word (`E0010`, `XE001` and `P01` are not codes).
fn codes_in(text: &str, out: &mut Codes) {
    let b = text.as_bytes();
    let word = |i: usize| {
        b.get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    for i in 0..b.len() {
        if matches!(b[i], b'E' | b'P')
            && (i == 0 || !word(i - 1))
            && b.len() >= i + 4
            && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
            && !word(i + 4)
        {
            out.insert(text[i..i + 4].to_owned());
        }
    }
}

/// The codes in Rust source `code`'s string literals.
fn emitted_in(code: &str) -> Codes {
    let mut found = Codes::new();
    for literal in literals(code) {
        codes_in(&literal, &mut found);
    }
    found
}

/// The codes in the first column of a markdown table, with how many rows
/// name each (one row per code).
fn documented_in(markdown: &str) -> BTreeMap<String, usize> {
    let mut rows = BTreeMap::new();
    for line in markdown.lines().map(str::trim) {
        let Some(cell) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
            continue;
        };
        let mut found = Codes::new();
        codes_in(cell, &mut found);
        for code in found {
            *rows.entry(code).or_insert(0) += 1;
        }
    }
    rows
}

#[test]
fn every_code_limen_emits_has_one_row_in_docs_errors_md() {
    let mut files = Vec::new();
    sources(&manifest().join("src"), &mut files);
    let mut emitted = Codes::new();
    for file in &files {
        emitted.extend(emitted_in(&fs::read_to_string(file).expect("read source")));
    }
    // A wrong path would make both sides empty and the check vacuous.
    assert!(
        emitted.len() > 20,
        "the sources were not found: {emitted:?}"
    );
    let doc = manifest().join("../docs/errors.md");
    let rows = documented_in(&fs::read_to_string(&doc).expect("read docs/errors.md"));
    let documented: Codes = rows.keys().cloned().collect();
    let undocumented: Vec<&String> = emitted.difference(&documented).collect();
    let stale: Vec<&String> = documented.difference(&emitted).collect();
    let twice: Vec<&String> = rows
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(c, _)| c)
        .collect();
    assert!(
        undocumented.is_empty() && stale.is_empty() && twice.is_empty(),
        "docs/errors.md and host/src disagree:\n  \
         emitted but not in the table: {undocumented:?}\n  \
         in the table but emitted nowhere: {stale:?}\n  \
         in more than one row: {twice:?}"
    );
}

#[test]
fn the_extractor_reads_literals_and_skips_comments() {
    let source = r##"
        /// Refused with `E901` (a doc comment).
        #[error("E001 cannot read {path}")]
        fn code(&self) -> &'static str { "P014" } // or "E902"
        let quote = '"'; let url = "http://x E002"; /* "E903" /* nested */ "E904" */
        let raw = r#"say "E003" twice"#; let other = "E0010 P01 XE004 \"E005\"";
    "##;
    let want: Codes = ["E001", "P014", "E002", "E003", "E005"]
        .map(String::from)
        .into();
    assert_eq!(emitted_in(source), want);

    let table = "| code | when |\n|---|---|\n| `E001` | P002 |\n| E001 |\nE003 |";
    let rows = documented_in(table);
    assert_eq!(rows.into_iter().collect::<Vec<_>>(), [("E001".into(), 2)]);
}
