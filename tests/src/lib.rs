//! The kit limen's end-to-end tests (and `cargo xtask demo`) are built from:
//! a throwaway PKI, real TLS and raw backends, an in-process limen, real
//! guests, and WAT guests encoded into components at test time.
#![warn(missing_docs)]

pub mod backend;
pub mod chromium;
pub mod cli;
pub mod etcd;
pub mod guests;
pub mod harness;
pub mod http;
pub mod pebble;
pub mod pki;
pub mod quic;
pub mod scrape;
pub mod wait;

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// A port free on 127.0.0.1 now (for a server that takes a port number, or
/// a listener the test must know before it binds).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The shared data directory (`../shared` beside the repository), or
/// `$LIMEN_SHARED`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("LIMEN_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}
