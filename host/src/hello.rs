//! The `hello` layer as limen sees it: framing, parsing and fingerprints
//! from the `limen-hello` crate (no I/O, fuzzed on its own), plus real
//! ClientHellos made on demand for `limen explain` and the policy self-test,
//! which need rustls and so live here: a rustls client writes its first
//! flight into a buffer.

pub use limen_hello::*;

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;

/// The TLS records a rustls client sends first for `sni` (no SNI extension
/// when `None`), offering `alpn`. Fails only for a name rustls would not send.
pub fn synthesise(sni: Option<&str>, alpn: &[String]) -> Result<Vec<u8>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // rustls sends no server_name extension for an IP address.
    let name = match sni {
        Some(sni) => ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?,
        None => ServerName::IpAddress(IpAddr::from([192, 0, 2, 1]).into()),
    };
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    conn.write_tls(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}
