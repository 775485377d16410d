//! `terminate`: limen finishes the handshake with the certificate the policy
//! named (checked by `openssl s_client`, `curl` and rustls), then forwards
//! plaintext or re-encrypts; failed handshakes reach no upstream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use limen::observe::metrics::names;
use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests, pki::Pki};
use rustls::AlertDescription;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::{WAIT, alert_of, curl, hello, raw_exchange, run, scratch, tls_get};

/// What a plaintext upstream answers: a whole HTTP response, then FIN.
const PLAIN_REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nplain\n";

/// A CA, two certificates from it written to files, and the `[certificates]`
/// and `[upstream_tls]` TOML naming them `secure` and `other`.
struct Certs {
    pki: Pki,
    dir: PathBuf,
    toml: String,
}

fn certs() -> anyhow::Result<Certs> {
    let pki = Pki::new(&["backend.internal", "127.0.0.1"])?;
    let dir = scratch("certs");
    let secure_names = ["secure.test", "*.alpn.test", "a.test", "typo.test"];
    let (secure_pem, secure_key) = pki.issue_files(&dir, "secure", &secure_names, None)?;
    let (other_pem, other_key) = pki.issue_files(&dir, "other", &["other.test"], None)?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem)?;
    let toml = format!(
        r#"
[certificates.secure]
chain = "{}"
key = "{}"

[certificates.other]
chain = "{}"
key = "{}"

[upstream_tls]
ca = "{}"
"#,
        secure_pem.display(),
        secure_key.display(),
        other_pem.display(),
        other_key.display(),
        ca.display()
    );
    Ok(Certs { pki, dir, toml })
}

/// A `static-routes` route terminating `name` with `certificate`.
fn terminate_route(name: &str, certificate: &str, upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"{{ match = "{name}", terminate = {{ certificate = "{certificate}", upstream = "{upstream}"{extra} }} }},"#
    )
}

async fn start(certs: &Certs, routes: &[String], extra: &str) -> anyhow::Result<Running> {
    let policy = format!("routes = [\n{}\n]", routes.join("\n"));
    let toml = config(
        &guests::example("static-routes"),
        &policy,
        "",
        &format!("{}\n{extra}", certs.toml),
    );
    Running::start(&toml).await
}

fn s_client(addr: SocketAddr, name: &str, ca: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-brief", "-connect", &addr.to_string()])
        .args(["-servername", name, "-verify_return_error", "-CAfile"])
        .arg(ca)
        .args(extra)
        .stdin(std::process::Stdio::null());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_verifies_the_certificate_named_for_each_host() -> anyhow::Result<()> {
    let certs = certs()?;
    let (plain, _) = backend::raw(PLAIN_REPLY).await?;
    let routes = [
        terminate_route("secure.test", "secure", plain, ""),
        terminate_route("other.test", "other", plain, ""),
    ];
    let limen = start(&certs, &routes, "").await?;
    let ca = certs.dir.join("ca.pem");
    for name in ["secure.test", "other.test"] {
        let (ok, out) = run(s_client(limen.addr, name, &ca, &[])).await?;
        assert!(ok, "{name}: {out}");
        assert!(out.contains("Verification: OK"), "{name}: {out}");
        assert!(
            out.contains(&format!("Peer certificate: CN = {name}")),
            "{name}: {out}"
        );
    }
    // Each name's certificate is its own: asking for secure.test's name with
    // other.test's route would fail verification.
    let (ok, out) = run(s_client(
        limen.addr,
        "other.test",
        &ca,
        &["-verify_hostname", "secure.test"],
    ))
    .await?;
    assert!(
        !ok,
        "other.test's certificate must not verify for secure.test: {out}"
    );
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_the_backend_over_plaintext_and_reencrypted() -> anyhow::Result<()> {
    let certs = certs()?;
    let (plain, mut received) = backend::raw(PLAIN_REPLY).await?;
    // The TLS backend answers with the SNI it received.
    let tls_backend = backend::tls("T", certs.pki.server_config()?).await?;
    let routes = [
        terminate_route("secure.test", "secure", plain, ""),
        terminate_route(
            "other.test",
            "other",
            tls_backend,
            r#", upstream_tls = "backend.internal""#,
        ),
    ];
    let limen = start(&certs, &routes, "").await?;
    let ca = certs.dir.join("ca.pem");
    let (ok, out) = run(curl(limen.addr.port(), "secure.test", &ca)).await?;
    assert!(ok && out == "plain\n", "{out}");
    let seen = tokio::time::timeout(WAIT, received.recv())
        .await?
        .expect("backend report");
    let request = String::from_utf8_lossy(&seen.bytes);
    assert!(
        request.starts_with("GET / HTTP/1.1\r\nHost: secure.test:"),
        "the upstream gets the decrypted request: {request}"
    );
    let (ok, out) = run(curl(limen.addr.port(), "other.test", &ca)).await?;
    assert!(ok, "{out}");
    assert_eq!(out, "backend=T sni=backend.internal\n");
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_is_what_the_decision_allows() -> anyhow::Result<()> {
    let certs = certs()?;
    let (plain, _) = backend::raw(PLAIN_REPLY).await?;
    let routes = [
        terminate_route("h1.alpn.test", "secure", plain, r#", alpn = ["http/1.1"]"#),
        terminate_route(
            "h2.alpn.test",
            "secure",
            plain,
            r#", alpn = ["h2", "http/1.1"]"#,
        ),
        terminate_route("none.alpn.test", "secure", plain, ""),
    ];
    let limen = start(&certs, &routes, "").await?;
    let negotiated = |offer: &'static [&'static str], name: &'static str| {
        let config = certs.pki.client_config(offer);
        async move {
            let tcp = TcpStream::connect(limen.addr).await?;
            let tls = TlsConnector::from(config?)
                .connect(ServerName::try_from(name)?, tcp)
                .await?;
            let alpn = tls.get_ref().1.alpn_protocol();
            anyhow::Ok(alpn.map(|p| String::from_utf8_lossy(p).into_owned()))
        }
    };
    let both = &["h2", "http/1.1"];
    assert_eq!(
        negotiated(both, "h1.alpn.test").await?.as_deref(),
        Some("http/1.1")
    );
    assert_eq!(
        negotiated(both, "h2.alpn.test").await?.as_deref(),
        Some("h2")
    );
    assert_eq!(negotiated(both, "none.alpn.test").await?, None);
    // Only h2 offered, only http/1.1 allowed: RFC 7301's alert.
    let error = negotiated(&["h2"], "h1.alpn.test").await.unwrap_err();
    let io = error.downcast_ref::<std::io::Error>().expect("io error");
    assert_eq!(
        alert_of(io),
        Some(AlertDescription::NoApplicationProtocol),
        "{io}"
    );
    assert_eq!(
        limen
            .counter_reaches(names::HANDSHAKE_FAILURES, &[("reason", "no_alpn")], 1)
            .await,
        1
    );
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_and_terminate_interleaved_on_one_listener() -> anyhow::Result<()> {
    let certs = certs()?;
    let (plain, _) = backend::raw(PLAIN_REPLY).await?;
    let pass_pki = Pki::new(&["pass.test"])?;
    let pass = backend::tls("P", pass_pki.server_config()?).await?;
    let routes = [
        terminate_route("secure.test", "secure", plain, ""),
        format!(r#"{{ match = "pass.test", upstream = "{pass}" }},"#),
    ];
    let limen = start(&certs, &routes, "").await?;
    let secure_client = certs.pki.client_config(&[])?;
    let pass_client = pass_pki.client_config(&[])?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let (addr, secure, pass) = (limen.addr, secure_client.clone(), pass_client.clone());
        tasks.spawn(async move {
            if i % 2 == 0 {
                (
                    i,
                    tls_get(addr, "secure.test", secure)
                        .await
                        .map(|b| b == "plain"),
                )
            } else {
                (
                    i,
                    tls_get(addr, "pass.test", pass)
                        .await
                        .map(|b| b == "backend=P sni=pass.test"),
                )
            }
        });
        // At most 32 in flight, interleaving both kinds throughout.
        while tasks.len() >= 32 {
            let (i, result) = tasks.join_next().await.expect("task")?;
            assert!(matches!(result, Ok(true)), "connection {i}: {result:?}");
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined?;
        assert!(matches!(result, Ok(true)), "connection {i}: {result:?}");
    }
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_get_their_alert_and_reach_no_upstream() -> anyhow::Result<()> {
    let certs = certs()?;
    let (plain, _, accepted) = backend::raw_counted(PLAIN_REPLY).await?;
    let routes = [
        terminate_route("secure.test", "secure", plain, ""),
        terminate_route("a.test", "secure", plain, ""),
        terminate_route("typo.test", "scure", plain, ""),
    ];
    let limen = start(&certs, &routes, "[limits]\nhandshake_timeout = \"300ms\"").await?;
    let ca = certs.dir.join("ca.pem");

    // No cipher in common (a CBC-only TLS 1.2 client): handshake_failure.
    let (ok, out) = run(s_client(
        limen.addr,
        "secure.test",
        &ca,
        &["-tls1_2", "-cipher", "AES128-SHA"],
    ))
    .await?;
    assert!(!ok && out.contains("alert handshake failure"), "{out}");
    assert_eq!(
        limen
            .counter_reaches(names::HANDSHAKE_FAILURES, &[("reason", "incompatible")], 1)
            .await,
        1
    );

    // The client does not trust the certificate and says so with an alert.
    let stranger = Pki::new(&["x.test"])?.client_config(&[])?;
    let error = tls_get(limen.addr, "secure.test", stranger)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("invalid peer certificate"),
        "{error}"
    );
    assert_eq!(
        limen
            .counter_reaches(names::HANDSHAKE_FAILURES, &[("reason", "client_alert")], 1)
            .await,
        1
    );

    // A client that sends its hello and then nothing: handshake timeout.
    let reply = raw_exchange(
        limen.addr,
        &[&hello("small-a.test.bin")],
        std::time::Duration::ZERO,
    )
    .await?;
    assert_eq!(
        reply.first(),
        Some(&22),
        "limen answered with a handshake record first"
    );
    assert_eq!(
        limen
            .counter_reaches(names::HANDSHAKE_FAILURES, &[("reason", "timeout")], 1)
            .await,
        1
    );

    // A certificate name limen does not have: the policy's mistake, so the
    // fail mode (default: internal_error) applies.
    let error = tls_get(limen.addr, "typo.test", certs.pki.client_config(&[])?)
        .await
        .unwrap_err();
    assert_eq!(
        alert_of(&error),
        Some(AlertDescription::InternalError),
        "{error}"
    );
    assert_eq!(
        limen.counter(names::POLICY_FAILURES, &[("kind", "invalid_decision")]),
        1
    );

    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no upstream was contacted"
    );
    // And the router still terminates a good client.
    let body = tls_get(limen.addr, "secure.test", certs.pki.client_config(&[])?).await?;
    assert_eq!(body, "plain");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_header_precedes_the_plaintext() -> anyhow::Result<()> {
    let certs = certs()?;
    let (plain, mut received) = backend::raw(PLAIN_REPLY).await?;
    let routes = [terminate_route(
        "secure.test",
        "secure",
        plain,
        r#", proxy_protocol = "v1""#,
    )];
    let limen = start(&certs, &routes, "").await?;
    let tcp = TcpStream::connect(limen.addr).await?;
    let client_port = tcp.local_addr()?.port();
    let name = ServerName::try_from("secure.test")?;
    let mut tls = TlsConnector::from(certs.pki.client_config(&[])?)
        .connect(name, tcp)
        .await?;
    tls.write_all(b"ping\n").await?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "no end after {:?}",
        String::from_utf8_lossy(&answer)
    );
    read??;
    assert_eq!(answer, PLAIN_REPLY);
    drop(tls);
    let seen = tokio::time::timeout(WAIT, received.recv())
        .await
        .expect("the backend saw the connection end")
        .expect("backend report");
    let expected = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {}\r\nping\n",
        limen.addr.port()
    );
    assert_eq!(String::from_utf8_lossy(&seen.bytes), expected);
    limen.stop().await
}
