//! The `limen test` cases file (parsed before any policy runs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use limen::offline::test::CaseFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = CaseFile::parse(text);
    }
});
