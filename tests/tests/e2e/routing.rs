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
    let limen = Running::start(&config(&guests::example("static-routes"), &routes, "", "")).await?;
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
    let limen = Running::start(&config(&guests::example("static-routes"), &routes, "", "")).await?;
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
    let limen = Running::start(&config(&guests::example("static-routes"), &routes, "", "")).await?;
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
    let limen = Running::start(&config(&guests::example("static-routes"), &routes, "", "")).await?;
    let s_client = |name: &'static str| {
        let (addr, ca) = (limen.addr.to_string(), ca.clone());
        tokio::task::spawn_blocking(move || {
            let mut child = std::process::Command::new("openssl")
                .args([
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
