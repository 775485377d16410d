//! Demo TLS backends for `cargo xtask demo`: A, B and C on 127.0.0.1:9451-9453,
//! each answering `backend=<name> sni=<sni>`, with a throwaway CA written to
//! the path given as the first argument. Runs until killed.

use limen_e2e::{backend, pki::Pki};

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
    // Written last: `cargo xtask demo` takes the file as the sign that every
    // backend is listening.
    std::fs::write(&ca_path, &pki.ca_pem)?;
    eprintln!("demo-backends: A, B, C on 127.0.0.1:9451-9453; CA in {ca_path}");
    std::future::pending::<()>().await;
    Ok(())
}
