//! Routing real TLS connections (rustls and openssl clients) to real TLS
//! backends with the `static-routes` example guest.

use std::time::Duration;

use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests, pki::Pki};
use rustls::AlertDescription;

use crate::common::{alert_of, hello, raw_exchange, static_routes, tls_get};

const NAMES: &[&str] = &[
    "a.test",
    "b.test",
    "unknown.test",
    "blocked.test",
    "*.wild.test",
    "a.b.wild.test",
    "*.rx.test",
    "127.0.0.1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_exact_wildcard_regex_default_and_no_sni() -> anyhow::Result<()> {
    let pki = Pki::new(NAMES)?;
    let server = pki.server_config()?;
    let a = backend::tls("A", server.clone()).await?;
    let b = backend::tls("B", server.clone()).await?;
    let c = backend::tls("C", server.clone()).await?;
    let d = backend::tls("D", server.clone()).await?;
    let routes = static_routes(a, b, c, Some(d), None);
    let limen = Running::with_static_routes(&routes, "").await?;
    let client = pki.client_config(&[])?;
    for (name, expected) in [
        ("a.test", "A"),
        ("A.TEST", "A"),
        ("x.wild.test", "B"),
        ("a.b.wild.test", "D"), // one label only, as certificates match
        ("node42.rx.test", "C"),
        ("nodex.rx.test", "D"),
        ("unknown.test", "D"),
        ("127.0.0.1", "D"), // an IP server name: rustls sends no SNI
    ] {
        let body = tls_get(limen.addr, name, client.clone()).await?;
        assert!(
            body.starts_with(&format!("backend={expected} ")),
            "{name}: got `{body}`"
        );
    }
    let error = tls_get(limen.addr, "blocked.test", client.clone())
        .await
        .unwrap_err();
    assert_eq!(
        alert_of(&error),
        Some(AlertDescription::AccessDenied),
        "{error}"
    );
    // The router keeps serving after a reject.
    assert!(
        tls_get(limen.addr, "a.test", client)
            .await?
            .starts_with("backend=A ")
    );
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_match_without_default_is_unrecognized_name() -> anyhow::Result<()> {
    let pki = Pki::new(NAMES)?;
    let a = backend::tls("A", pki.server_config()?).await?;
    let routes = static_routes(a, a, a, None, None);
    let limen = Running::with_static_routes(&routes, "").await?;
    let client = pki.client_config(&[])?;
    let error = tls_get(limen.addr, "unknown.test", client.clone())
        .await
        .unwrap_err();
    assert_eq!(
        alert_of(&error),
        Some(AlertDescription::UnrecognisedName),
        "{error}"
    );
    let error = tls_get(limen.addr, "127.0.0.1", client).await.unwrap_err();
    assert_eq!(
        alert_of(&error),
        Some(AlertDescription::UnrecognisedName),
        "no SNI, no default: {error}"
    );
    limen.stop().await
}

/// Recorded hellos (the peerbench set): case and trailing dot are normalised
/// before the policy sees the name, and the backend gets the exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_hellos_upper_case_and_trailing_dot() -> anyhow::Result<()> {
    let (a, mut a_rx) = backend::raw(b"A").await?;
    let (b, mut b_rx) = backend::raw(b"B").await?;
    let (c, _c_rx) = backend::raw(b"C").await?;
    let routes = format!(
        "default = \"{a}\"\nroutes = [ {{ match = \"b.test\", upstream = \"{b}\" }}, {{ match = \"c.test\", upstream = \"{c}\" }} ]"
    );
    let limen = Running::with_static_routes(&routes, "").await?;
    for (file, expected) in [
        ("small-B.TEST.bin", "B"),
        ("small-b.test..bin", "B"),
        ("small-nosni.bin", "A"),
    ] {
        let hello = hello(file);
        let reply = raw_exchange(limen.addr, &[&hello], Duration::ZERO).await?;
        assert_eq!(reply, expected.as_bytes(), "{file}");
        let rx = if expected == "B" {
            &mut b_rx
        } else {
            &mut a_rx
        };
        let received = tokio::time::timeout(crate::common::WAIT, rx.recv())
            .await?
            .expect("backend report");
        assert_eq!(
            received.bytes, hello,
            "{file}: the upstream must get the hello byte for byte"
        );
    }
    limen.stop().await
}

/// `openssl s_client`, where installed: the alert and a routed handshake as
/// another TLS stack sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client() -> anyhow::Result<()> {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: openssl not installed");
        return Ok(());
    }
    let pki = Pki::new(NAMES)?;
    let ca = crate::common::scratch("ca.pem");
    std::fs::write(&ca, &pki.ca_pem)?;
    let a = backend::tls("A", pki.server_config()?).await?;
    let b = backend::tls("B", pki.server_config()?).await?;
    let routes = static_routes(a, b, b, None, None);
    let limen = Running::with_static_routes(&routes, "").await?;
    let s_client = |name: &'static str| {
        let (addr, ca) = (limen.addr.to_string(), ca.clone());
        tokio::task::spawn_blocking(move || {
            // coreutils `timeout` bounds a handshake that would never end.
            let mut child = std::process::Command::new("timeout")
                .args([
                    "10",
                    "openssl",
                    "s_client",
                    "-connect",
                    &addr,
                    "-servername",
                    name,
                    "-verify_return_error",
                    "-ign_eof",
                    "-CAfile",
                ])
                .arg(&ca)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            use std::io::Write;
            child
                .stdin
                .take()
                .map(|mut s| s.write_all(b"GET / HTTP/1.1\r\n\r\n"));
            let out = child.wait_with_output()?;
            Ok::<_, std::io::Error>(
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        })
    };
    let routed = s_client("X.WILD.TEST").await??;
    assert!(
        routed.contains("Verify return code: 0 (ok)") && routed.contains("backend=B"),
        "{routed}"
    );
    let rejected = s_client("nope.test").await??;
    assert!(
        rejected.contains("unrecognized name") && rejected.contains("alert number 112"),
        "{rejected}"
    );
    limen.stop().await
}

/// `proxy_protocol = "v2"` on a route: the upstream first gets a PROXY v2
/// header naming the real client and limen's address, then the hello.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v2_header_before_the_hello() -> anyhow::Result<()> {
    let (up, mut up_rx) = backend::raw(b"P").await?;
    let routes = format!(
        "routes = [ {{ match = \"a.test\", upstream = \"{up}\", proxy_protocol = \"v2\" }} ]"
    );
    let limen = Running::with_static_routes(&routes, "").await?;
    let hello = hello("small-a.test.bin");
    let mut tcp = tokio::net::TcpStream::connect(limen.addr).await?;
    let client = tcp.local_addr()?;
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &hello).await?;
    let mut reply = Vec::new();
    tokio::time::timeout(
        crate::common::WAIT,
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut reply),
    )
    .await??;
    drop(tcp);
    let received = tokio::time::timeout(crate::common::WAIT, up_rx.recv())
        .await?
        .expect("backend report");
    // Parsed by the `ppp` crate, as a PROXY-aware backend would.
    let header = ppp::v2::Header::try_from(received.bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(
        header.addresses,
        ppp::v2::Addresses::from((client, limen.addr))
    );
    assert_eq!(
        &received.bytes[header.len()..],
        hello.as_slice(),
        "the hello follows the header"
    );
    limen.stop().await
}

/// A policy that names limen's own listener is refused (it would loop
/// connections into limen until every permit is taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_limen_itself_is_refused() -> anyhow::Result<()> {
    let port = limen_e2e::free_port()?;
    let routes = format!("default = \"127.0.0.1:{port}\"");
    let toml = config(&guests::example("static-routes"), &routes, "", "")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let limen = Running::start(&toml).await?;
    let reply = raw_exchange(limen.addr, &[&hello("small-a.test.bin")], Duration::ZERO).await?;
    assert_eq!(
        reply,
        [21, 3, 1, 0, 2, 2, 80],
        "on_error = reject: an internal_error alert"
    );
    assert_eq!(
        limen.counter(
            limen::observe::metrics::names::POLICY_FAILURES,
            &[("kind", "invalid_decision")]
        ),
        1
    );
    assert_eq!(
        limen.counter(limen::observe::metrics::names::CONNECTIONS, &[]),
        1,
        "no looped connection"
    );
    limen.stop().await
}

/// A server_name that is not a DNS name (FortiClient's capture in the shared
/// corpus sends the IP literal `82.81.46.13`) has no validated SNI, but the
/// policy reads it as sent (`server-name`) and static-routes routes it by an
/// exact route written the same way; any other client without SNI gets the
/// default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_sent_as_an_ip_literal_routes_by_an_exact_route() -> anyhow::Result<()> {
    let corpus = limen_e2e::shared_dir().join("testdata/clienthello/corpus.jsonl");
    let row: serde_json::Value = std::fs::read_to_string(corpus)?
        .lines()
        .map(serde_json::from_str::<serde_json::Value>)
        .find(|row| {
            row.as_ref()
                .is_ok_and(|r| r["id"] == "ndpi:forticlient.pcap#s0")
        })
        .expect("the FortiClient row")?;
    assert_eq!(row["sni"], "82.81.46.13");
    let forticlient = hex::decode(row["record_hex"].as_str().expect("record_hex"))?;
    let (a, _a_rx) = backend::raw(b"A").await?;
    let (b, mut b_rx) = backend::raw(b"B").await?;
    let routes = format!(
        "default = \"{a}\"\nroutes = [ {{ match = \"82.81.46.13\", upstream = \"{b}\" }} ]"
    );
    let limen = Running::with_static_routes(&routes, "").await?;
    let reply = raw_exchange(limen.addr, &[&forticlient], Duration::ZERO).await?;
    assert_eq!(reply, b"B", "routed by the name as sent");
    let received = tokio::time::timeout(crate::common::WAIT, b_rx.recv())
        .await?
        .expect("backend report");
    assert_eq!(received.bytes, forticlient, "the hello byte for byte");
    let reply = raw_exchange(limen.addr, &[&hello("small-nosni.bin")], Duration::ZERO).await?;
    assert_eq!(reply, b"A", "no server_name at all: the default");
    limen.stop().await
}
