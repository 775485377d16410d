//! Demo backends for `cargo xtask demo`: TLS backends A, B and C on
//! 127.0.0.1:9451-9453, each answering `backend=<name> sni=<sni>`, and a
//! plaintext HTTP backend S on 9454 for the host limen terminates. A throwaway
//! CA goes to the path given as the first argument, and beside it
//! `secure.pem` / `secure.key`, the certificate limen serves for
//! `secure.test`. Runs until killed.

use limen_e2e::{backend, pki::Pki};

/// What the plaintext backend behind `secure.test` answers.
const PLAIN_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 48\r\nconnection: close\r\n\r\nbackend=S (plaintext; limen terminated the TLS)\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ca_path = std::env::args().nth(1).unwrap_or_else(|| "ca.pem".into());
    let pki = Pki::new(&[
        "a.test",
        "b.test",
        "*.wild.test",
        "*.rx.test",
        "blocked.test",
    ])?;
    let server = pki.server_config()?;
    for (name, port) in [("A", 9451), ("B", 9452), ("C", 9453)] {
        let addr = format!("127.0.0.1:{port}").parse()?;
        backend::tls_on(addr, name, server.clone())
            .await
            .map_err(|e| anyhow::anyhow!("demo backend {name} cannot listen on {addr}: {e}"))?;
    }
    let plain = "127.0.0.1:9454".parse()?;
    backend::raw_on(plain, PLAIN_REPLY)
        .await
        .map_err(|e| anyhow::anyhow!("demo backend S cannot listen on {plain}: {e}"))?;
    let dir = std::path::Path::new(&ca_path)
        .parent()
        .unwrap_or(std::path::Path::new("."));
    pki.issue_files(dir, "secure", &["secure.test", "reencrypt.test"], None)?;
    // Written last: `cargo xtask demo` takes the file as the sign that every
    // backend is listening and every file is in place.
    std::fs::write(&ca_path, &pki.ca_pem)?;
    eprintln!("demo-backends: A, B, C on 127.0.0.1:9451-9453, S on 9454; CA in {ca_path}");
    std::future::pending::<()>().await;
    Ok(())
}
