//! The kit limen's end-to-end tests (and `cargo xtask demo`) are built from:
//! a throwaway PKI, real TLS and raw backends, an in-process limen, real
//! guests, and WAT guests encoded into components at test time.
#![warn(missing_docs)]

pub mod backend;
pub mod etcd;
pub mod guests;
pub mod harness;
pub mod pebble;
pub mod pki;
pub mod scrape;

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The shared data directory (`../shared` beside the repository), or
/// `$LIMEN_SHARED`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("LIMEN_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}
