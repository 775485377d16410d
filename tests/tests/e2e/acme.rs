//! ACME against a real CA: Debian's `pebble` validates TLS-ALPN-01 by
//! connecting to limen's listener (its DNS, `pebble-challtestsrv`, points
//! every name at 127.0.0.1), issues, and `curl` verifies what limen serves
//! against pebble's root. Both are installed by `.ci/run` when absent.
//! (`acme_check.rs`: what an operator is told before and when it fails.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use limen::control::admin::client;
use limen::control::admin::protocol::{Answer, Request};
use limen::observe::metrics::names;
use limen_e2e::free_port;
use limen_e2e::harness::{Running, config};
use limen_e2e::pebble::Pebble;
use limen_e2e::{backend, guests, http};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::common::{WAIT, curl, echoes, run, scratch};

const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nshop";

/// Everything one test runs: pebble, the backends, and the config.
pub(crate) struct Setup {
    pub(crate) pebble: Pebble,
    pub(crate) toml: String,
    pub(crate) admin: PathBuf,
    pub(crate) storage: PathBuf,
    pub(crate) port: u16,
    raw: tokio::sync::mpsc::UnboundedReceiver<backend::Received>,
}

/// Pebble, and a config with `shop` ordered from it for two names:
/// `shop.example.com` terminates to a raw HTTP backend, `www.` to an echo
/// server; `other.example.com` passes through to the raw backend.
pub(crate) async fn setup() -> anyhow::Result<Setup> {
    let port = free_port()?;
    let dir = scratch("pebble");
    let pebble = Pebble::start(&dir, port).await?;
    let (raw, received) = backend::raw(REPLY).await?;
    let echo = backend::echo().await?;
    let (admin, storage) = (scratch("admin.sock"), scratch("acme"));
    let routes = format!(
        r#"routes = [
  {{ match = "shop.example.com", terminate = {{ certificate = "shop", upstream = "{raw}" }} }},
  {{ match = "www.shop.example.com", terminate = {{ certificate = "shop", upstream = "{echo}" }} }},
  {{ match = "api.shop.example.com", terminate = {{ certificate = "shop", upstream = "{echo}" }} }},
  {{ match = "other.example.com", upstream = "{raw}" }},
]"#
    );
    let extra = format!(
        r#"
[admin]
socket = "{admin}"

[metrics]
bind = "127.0.0.1:0"

[status]
bind = "127.0.0.1:0"

[acme]
directory = "{directory}"
contact = ["mailto:ops@example.com"]
storage = "{storage}"
ca = "{ca}"

[certificates.shop]
acme = ["shop.example.com", "www.shop.example.com"]
"#,
        admin = admin.display(),
        directory = pebble.directory(),
        storage = storage.display(),
        ca = pebble.tls_ca().display(),
    );
    let toml = config(&guests::example("static-routes"), &routes, "", &extra).replacen(
        "127.0.0.1:0",
        &format!("127.0.0.1:{port}"),
        1,
    );
    Ok(Setup {
        pebble,
        toml,
        admin,
        storage,
        port,
        raw: received,
    })
}

/// Wait (at most 60 s: an order is several round trips and a validation)
/// until `limen_acme_orders_total{certificate="shop",outcome}` reaches `n`.
async fn orders(limen: &Running, outcome: &str, n: u64, pebble: &Pebble) -> anyhow::Result<()> {
    let labels = [("certificate", "shop"), ("outcome", outcome)];
    limen
        .counter_reaches_within(Duration::from_secs(60), names::ACME_ORDERS, &labels, n)
        .await
        .with_context(|| format!("{}\npebble:\n{}", limen.metrics.render(), pebble.log()))?;
    Ok(())
}

/// The `shop` entry of `/status.json`.
async fn status_of_shop(limen: &Running) -> anyhow::Result<serde_json::Value> {
    let addr = limen.status_addr.context("status listener")?;
    let body = http::get(addr, "/status.json").await?.ok()?;
    let status: serde_json::Value = serde_json::from_str(&body)?;
    let certificates = status["certificates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    certificates
        .into_iter()
        .find(|c| c["name"] == "shop")
        .context("no shop in /status.json")
}

async fn renew(admin: &Path) -> anyhow::Result<Answer> {
    let admin = admin.to_str().expect("utf-8 path");
    let request = Request::Renew {
        certificate: "shop".into(),
    };
    Ok(client::call(admin, None, request, &[]).await?)
}

/// A TLS connection to `name` through limen, verified against `root`.
async fn connect(
    addr: SocketAddr,
    name: &str,
    root: &Path,
    alpn: &[&str],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root)?;
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).map_err(std::io::Error::other)?;
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let name = ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr).await?;
    tokio::time::timeout(
        WAIT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await?
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// The leaf a connection was served.
fn leaf(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    let certs = tls.get_ref().1.peer_certificates().unwrap_or_default();
    certs.first().map(|c| c.to_vec()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_issues_renews_and_restarts_from_storage() -> anyhow::Result<()> {
    let mut setup = setup().await?;
    let limen = Running::start(&setup.toml).await?;
    orders(&limen, "issued", 1, &setup.pebble).await?;
    // Two names, two TLS-ALPN-01 validations answered by limen itself.
    let challenges = limen.counter(names::ACME_CHALLENGES, &[("certificate", "shop")]);
    assert!(challenges >= 2, "{challenges} challenges answered");
    let root = setup.pebble.root_pem()?;

    // curl verifies the chain limen serves against pebble's root.
    let (ok, out) = run(curl(setup.port, "shop.example.com", &root)).await?;
    assert!(ok && out == "shop", "curl: {out}");
    let expiry = limen.counter(names::CERTIFICATE_EXPIRY, &[("certificate", "shop")]);
    assert!(expiry > 1_700_000_000, "expiry gauge {expiry}");

    // Stored privately.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode(setup.storage.clone())?, 0o700);
    let stored = std::fs::read_dir(setup.storage.join("certs"))?
        .next()
        .context("no stored certificate")??
        .path();
    assert_eq!(mode(stored.join("key.pem"))?, 0o600);

    // A long-lived terminated connection, then a forced renewal.
    let mut long = connect(limen.addr, "www.shop.example.com", &root, &[]).await?;
    echoes(&mut long, b"before renewal\n").await?;
    let first = leaf(&long);
    assert!(matches!(
        renew(&setup.admin).await?,
        Answer::Renewing { .. }
    ));
    orders(&limen, "renewed", 1, &setup.pebble).await?;
    let fresh = connect(limen.addr, "www.shop.example.com", &root, &[]).await?;
    let second = leaf(&fresh);
    assert!(
        !second.is_empty() && second != first,
        "renewal served the old leaf"
    );
    // The connection made before keeps its session and its bytes.
    echoes(&mut long, b"after renewal\n").await?;
    drop((long, fresh));

    // `acme-tls/1` for a name limen does not manage: the policy decides it
    // (a passthrough), and the backend gets the hello byte for byte.
    let answered = limen.counter(names::ACME_CHALLENGES, &[]);
    while setup.raw.try_recv().is_ok() {}
    let _ = connect(limen.addr, "other.example.com", &root, &["acme-tls/1"]).await;
    let got = tokio::time::timeout(WAIT, setup.raw.recv())
        .await?
        .expect("backend report");
    let text = String::from_utf8_lossy(&got.bytes);
    assert!(got.bytes.first() == Some(&0x16), "not a TLS record");
    assert!(text.contains("other.example.com") && text.contains("acme-tls/1"));
    assert_eq!(limen.counter(names::ACME_CHALLENGES, &[]), answered);

    // A restart serves the stored certificate from its first connection,
    // without ordering.
    limen.stop().await?;
    let limen = Running::start(&setup.toml).await?;
    let again = connect(limen.addr, "www.shop.example.com", &root, &[]).await?;
    assert_eq!(
        leaf(&again),
        second,
        "restart did not reuse the stored certificate"
    );
    drop(again);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(limen.counter(names::ACME_ORDERS, &[]), 0, "restart ordered");

    // A reload that adds a name: the certificate in service serves on
    // (no gap for the names it has) until the new one is issued for all.
    let more = setup.toml.replace(
        r#""www.shop.example.com"]"#,
        r#""www.shop.example.com", "api.shop.example.com"]"#,
    );
    let answer = limen.control.reload(limen::Config::from_toml(&more)?).await;
    assert!(answer.is_success(), "{answer:?}");
    let during = connect(limen.addr, "www.shop.example.com", &root, &[]).await?;
    assert!(!leaf(&during).is_empty());
    drop(during);
    orders(&limen, "renewed", 1, &setup.pebble).await?;
    let api = connect(limen.addr, "api.shop.example.com", &root, &[]).await?;
    let third = leaf(&api);
    drop(api);
    assert!(third != second, "the reload's names were not ordered");

    // With the CA gone, a renewal fails, is counted, and the certificate
    // in service stays in service.
    setup.pebble.stop_ca();
    assert!(matches!(
        renew(&setup.admin).await?,
        Answer::Renewing { .. }
    ));
    orders(&limen, "failed", 1, &setup.pebble).await?;
    let after = connect(limen.addr, "www.shop.example.com", &root, &[]).await?;
    assert_eq!(leaf(&after), third);
    drop(after);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_the_first_certificate_is_issued_terminate_gets_the_fail_mode() -> anyhow::Result<()>
{
    let mut setup = setup().await?;
    setup.pebble.stop_ca();
    let limen = Running::start(&setup.toml).await?;
    orders(&limen, "failed", 1, &setup.pebble).await?;
    let shop = status_of_shop(&limen).await?;
    assert_eq!(
        (&shop["source"], &shop["state"]),
        (&"acme".into(), &"pending".into())
    );
    assert!(shop["failed_orders"].as_u64() >= Some(1), "{shop}");
    // No certificate yet: the fail mode (default: internal_error alert).
    let refused = limen.counter(names::POLICY_FAILURES, &[("kind", "invalid_decision")]);
    let tcp = TcpStream::connect(limen.addr).await?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from("shop.example.com")?;
    let handshake = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    let error = tokio::time::timeout(WAIT, handshake)
        .await
        .context("handshake without a certificate")?
        .expect_err("a handshake without a certificate");
    assert_eq!(
        crate::common::alert_of(&error),
        Some(rustls::AlertDescription::InternalError),
        "{error}"
    );
    assert_eq!(
        limen.counter(names::POLICY_FAILURES, &[("kind", "invalid_decision")]),
        refused + 1
    );
    // The CA comes back; a renewal (or the back-off) issues.
    setup.pebble.start_ca().await?;
    let answer = renew(&setup.admin).await.context("renew")?;
    assert!(matches!(answer, Answer::Renewing { .. }), "{answer:?}");
    orders(&limen, "issued", 1, &setup.pebble).await?;
    let root = setup.pebble.root_pem()?;
    let mut tls = connect(limen.addr, "www.shop.example.com", &root, &[])
        .await
        .context("connect once issued")?;
    echoes(&mut tls, b"issued\n").await.context("echo")?;
    let shop = status_of_shop(&limen).await?;
    assert_eq!(shop["state"], "issued", "{shop}");
    assert!(shop["days_left"].as_i64() > Some(1), "{shop}");
    drop(tls);
    limen.stop().await
}
