//! Changes from outside: the module file replaced on disk (watched), and
//! SIGHUP re-reading the whole config: listeners added and removed,
//! certificates reloaded, and a bad config refused whole.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use limen::control::admin::protocol::Status;
use limen_e2e::harness::{Running, config};
use limen_e2e::pki::Pki;
use limen_e2e::wait::eventually;
use limen_e2e::{backend, guests};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::{WAIT, ask, scratch};
use crate::process::Process;

/// Ask until the reply is `want` (a swap is asynchronous to the writer).
async fn until_reply(addr: SocketAddr, hello: &[u8], want: &[u8]) -> anyhow::Result<()> {
    let what = format!("a reply {:?}", String::from_utf8_lossy(want));
    eventually(
        WAIT,
        &what,
        async || Ok(ask(addr, hello).await?),
        |reply| reply == want,
    )
    .await?;
    Ok(())
}

/// Write `bytes` beside `path`, then rename over it: how deploys replace files.
fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_module_file_goes_live_and_a_broken_one_is_refused() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    // A directory of its own: the watch sees only this file's events, not
    // the churn of the tests running beside it in the shared scratch dir.
    let dir = scratch("watched");
    std::fs::create_dir_all(&dir)?;
    let module = dir.join("watched.wasm");
    std::fs::write(&module, guests::passthrough_to(&a.to_string())?)?;
    let cache = format!("cache = \"{}\"", scratch("cache").display());
    let limen = Running::start(&config(&module, "", &cache, "")).await?;
    let hello = limen::offline::explain::synthesise("t.test", &[])?;
    assert_eq!(ask(limen.addr, &hello).await?, b"A");

    replace_atomically(&module, &guests::passthrough_to(&b.to_string())?)?;
    until_reply(limen.addr, &hello, b"B").await?;
    let file = [("trigger", "file"), ("outcome", "applied")];
    assert_eq!(
        limen
            .counter_reaches("limen_policy_swaps_total", &file, 1)
            .await,
        1
    );

    replace_atomically(&module, b"not a component")?;
    let refused = [("trigger", "file"), ("outcome", "refused")];
    assert_eq!(
        limen
            .counter_reaches("limen_policy_swaps_total", &refused, 1)
            .await,
        1
    );
    assert_eq!(
        ask(limen.addr, &hello).await?,
        b"B",
        "the old policy serves on"
    );

    // Written in place (not renamed) works too: the watch waits for quiet.
    std::fs::write(&module, guests::passthrough_to(&a.to_string())?)?;
    until_reply(limen.addr, &hello, b"A").await?;
    assert_eq!(
        limen
            .counter_reaches("limen_policy_swaps_total", &file, 2)
            .await,
        2
    );
    limen.stop().await
}

fn addr_of(status: &Status, name: &str) -> Option<SocketAddr> {
    status
        .listeners
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, a)| a.parse().ok())
}

/// The leaf certificate limen presents for web.test.
async fn served_leaf(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
) -> anyhow::Result<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("web.test")?;
    let tls = tokio::time::timeout(WAIT, TlsConnector::from(client).connect(name, tcp)).await??;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned());
    Ok(leaf
        .ok_or_else(|| anyhow::anyhow!("no certificate"))?
        .to_vec())
}

fn leaf_in(chain: &Path) -> anyhow::Result<Vec<u8>> {
    let first = CertificateDer::pem_file_iter(chain)?.next();
    Ok(first
        .ok_or_else(|| anyhow::anyhow!("empty chain"))??
        .to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_listeners_reloads_certificates_and_refuses_bad_configs_whole()
-> anyhow::Result<()> {
    let pki = Pki::new(&["web.test"])?;
    let certs = scratch("certs");
    let (chain, key) = pki.issue_files(&certs, "web", &["web.test"], None)?;
    let (a, _) = backend::raw(b"A").await?;
    let (plain, _) = backend::raw(b"P").await?;
    let admin = scratch("admin.sock");
    let path = scratch("limen.toml");
    let any = "127.0.0.1:0".to_owned();
    let write = |listeners: &[(&str, &String)], extra: &str| -> anyhow::Result<()> {
        let mut toml = String::new();
        for (name, bind) in listeners {
            toml += &format!("[[listeners]]\nname = \"{name}\"\nbind = \"{bind}\"\n");
        }
        let rest = config(
            &guests::example("static-routes"),
            &format!(
                r#"default = "{a}"
routes = [ {{ match = "web.test", terminate = {{ certificate = "web", upstream = "{plain}" }} }} ]"#
            ),
            "",
            &format!(
                "[admin]\nsocket = \"{}\"\n[certificates.web]\nchain = \"{}\"\nkey = \"{}\"\n{extra}",
                admin.display(),
                chain.display(),
                key.display()
            ),
        );
        // `config` writes one listener named `public`; these replace it.
        let rest = rest.replace(
            "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n",
            "",
        );
        std::fs::write(&path, toml + &rest)?;
        Ok(())
    };
    write(&[("one", &any)], "")?;
    let limen = Process::start(&path, admin.clone())?;
    let status = limen.generation(1).await?;
    let one = addr_of(&status, "one").expect("listener one");
    let hello = limen::offline::explain::synthesise("t.test", &[])?;
    let client = pki.client_config(&[])?;
    assert_eq!(ask(one, &hello).await?, b"A");
    assert_eq!(served_leaf(one, client.clone()).await?, leaf_in(&chain)?);

    // A new certificate in place, and a second listener.
    pki.issue_files(&certs, "web", &["web.test"], None)?;
    write(&[("one", &any), ("two", &any)], "")?;
    limen.hangup();
    let status = limen.generation(2).await?;
    let two = addr_of(&status, "two").expect("listener two");
    assert_eq!(
        addr_of(&status, "one"),
        Some(one),
        "kept listener, same socket"
    );
    assert_eq!(ask(two, &hello).await?, b"A");
    assert_eq!(
        served_leaf(one, client.clone()).await?,
        leaf_in(&chain)?,
        "reloaded certificate"
    );

    // The first listener removed.
    write(&[("two", &any)], "")?;
    limen.hangup();
    let status = limen.generation(3).await?;
    let two = addr_of(&status, "two").expect("listener two");
    assert!(
        TcpStream::connect(one).await.is_err(),
        "listener one still accepts"
    );
    assert_eq!(ask(two, &hello).await?, b"A");

    // Refused whole: bad TOML; a listener that cannot bind; a missing key.
    let held = std::net::TcpListener::bind("127.0.0.1:0")?;
    let held_addr = held.local_addr()?.to_string();
    let bad_certificate =
        "[certificates.other]\nchain = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"";
    let cases = [
        ("bad toml", vec![("two", &any)], "[limits\n"),
        (
            "bind conflict",
            vec![("two", &any), ("three", &held_addr)],
            "",
        ),
        (
            "missing certificate",
            vec![("two", &any), ("three", &any)],
            bad_certificate,
        ),
    ];
    for (n, (what, listeners, extra)) in cases.into_iter().enumerate() {
        write(&listeners, extra)?;
        limen.hangup();
        let refusals = |log: &String| log.matches("configuration refused").count();
        let logged = format!("{what}: refusal {} logged", n + 1);
        eventually(
            WAIT,
            &logged,
            async || Ok(limen.log()),
            |log| refusals(log) > n,
        )
        .await?;
        let status = limen.status().await?;
        assert_eq!(status.generation, 3, "{what}: nothing changed");
        assert_eq!(status.listeners.len(), 1, "{what}: {:?}", status.listeners);
        assert_eq!(ask(two, &hello).await?, b"A", "{what}: still serving");
    }
    drop(held);
    Ok(())
}
