//! A real browser through limen over HTTP/3: headless Chromium, forced onto
//! QUIC, loads `https://a.test/` from an aioquic upstream that limen routes
//! it to by the SNI of its Initials. Chromium 148's post-quantum
//! ClientHello (X25519MLKEM768, about 1,800 bytes) spans two Initial
//! packets whose CRYPTO frames it scrambles, so this proves limen reads the
//! Initials a browser really sends, not only aioquic's tidy ones.

use std::path::Path;

use limen_e2e::chromium::{self, Rendered};
use limen_e2e::free_port;
use limen_e2e::harness::{Running, quic_config};
use limen_e2e::pki::Pki;
use limen_e2e::quic::H3Server;

use crate::common::scratch;

/// limen with a TCP and a QUIC listener on one port, routing `a.test` to
/// `server`. The upstream speaks UDP only, so were Chromium to fall back
/// to TCP, limen's TCP route would find nothing there and the page would
/// not be the upstream's.
async fn limen(server: &H3Server) -> anyhow::Result<Running> {
    let port = free_port()?;
    let route = format!("{{ match = \"a.test\", upstream = \"{}\" }}", server.addr());
    let toml = quic_config(port, true, &route, "", "");
    Running::start(&toml).await
}

/// Everything that says what happened to Chromium's datagrams, for a
/// failure message: limen's QUIC series (flows made, datagrams relayed,
/// drops by reason), the upstream's log, Chromium's own log lines beyond
/// the container's D-Bus noise, and where its NetLog is.
fn story(limen: &Running, server: &H3Server, run: Option<&Rendered>, netlog: &Path) -> String {
    let metrics = limen.metrics.render();
    let quic: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("limen_quic_"))
        .collect();
    let chromium: Vec<&str> = run
        .map(|r| r.stderr.lines().filter(|l| !l.contains("dbus")).collect())
        .unwrap_or_default();
    format!(
        "limen:\n{}\nupstream:\n{}\nchromium:\n{}\nNetLog: {}",
        quic.join("\n"),
        server.log(),
        chromium.join("\n"),
        netlog.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_a_page_over_http3_through_limen() -> anyhow::Result<()> {
    let dir = scratch("quic-chromium");
    std::fs::create_dir_all(&dir)?;
    // The leaf's key is made here so its SubjectPublicKeyInfo can be
    // pinned: Chromium would not trust the test CA for QUIC.
    let key = rcgen::KeyPair::generate()?;
    let pin = chromium::spki_pin(&rcgen::PublicKeyData::subject_public_key_info(&key));
    let pki = Pki::new(&["a.test"])?;
    let (cert, key) = pki.issue_files(&dir, "a.test", &["a.test"], Some(key))?;
    let server = H3Server::start("a.test", &cert, &key).await?;
    let limen = limen(&server).await?;
    let quic = limen.addrs[1].1;
    let netlog = dir.join("netlog.json");
    let flags = [
        // QUIC only, for this origin: no racing TCP, no Alt-Svc needed.
        "--enable-quic".to_owned(),
        "--origin-to-force-quic-on=a.test:443".to_owned(),
        // a.test:443 is limen's port (its UDP side, for QUIC).
        format!("--host-resolver-rules=MAP a.test:443 {quic}"),
        format!("--ignore-certificate-errors-spki-list={pin}"),
        // Kept for a failure's post-mortem: every QUIC packet as Chromium
        // saw it.
        format!("--log-net-log={}", netlog.display()),
    ];
    let run = chromium::render("https://a.test/", &dir.join("profile"), &flags).await;
    let page = match run {
        Ok(page) => page,
        Err(error) => {
            anyhow::bail!("{error:#}\n{}", story(&limen, &server, None, &netlog))
        }
    };
    // The body aioquic's HTTP/3 server wrote (Chromium shows text/plain
    // in a <pre>); nothing else answers `a.test h3 /`.
    assert!(
        page.dom.contains("a.test h3 /"),
        "{}\n{}",
        page.dom,
        story(&limen, &server, Some(&page), &netlog)
    );
    // The upstream saw Chromium's own hello (its SNI, h3) and the request.
    let log = server.log();
    assert!(
        log.contains("handshake sni=a.test alpn=h3")
            && log.contains("request sni=a.test authority=a.test method=GET path=/ "),
        "{}",
        story(&limen, &server, Some(&page), &netlog)
    );
    let flows = limen.counter("limen_quic_flows_total", &[("listener", "quic")]);
    assert!(
        flows >= 1,
        "{}",
        story(&limen, &server, Some(&page), &netlog)
    );
    // And none of Chromium's datagrams was turned away on the way: a
    // hello limen half-read and Chromium retransmitted until it got
    // through would still load the page, but count a drop here.
    let metrics = limen.metrics.render();
    let dropped = metrics
        .lines()
        .any(|l| l.starts_with("limen_quic_dropped_total") && !l.ends_with(" 0"));
    assert!(!dropped, "{}", story(&limen, &server, Some(&page), &netlog));
    limen.stop().await
}
