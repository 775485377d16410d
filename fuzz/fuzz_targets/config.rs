//! limen's config file: an operator's typo must become a coded error, never
//! a panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limen::state::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text);
    }
});
