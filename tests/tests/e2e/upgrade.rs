//! `limen upgrade`: a running limen starts the binary on disk and hands it
//! its sockets; clients under load see no refused or reset connection, long
//! transfers finish on the old process with every byte, and a new process
//! that refuses its configuration leaves the old one serving. HTTP/3
//! through a QUIC listener is routed across an upgrade.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use limen::control::admin::client;
use limen::control::admin::protocol::{Answer, Request, Status};
use limen_e2e::cli::limen;
use limen_e2e::harness::quic_config;
use limen_e2e::quic::{h3_get, h3_servers};
use limen_e2e::{backend, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{WAIT, ask, config_file, scratch};
use crate::process::Process;

/// A config with listener `web`, the admin socket `admin`, `long.test` to
/// an echo upstream and everything else to `short`.
fn toml(admin: &Path, short: SocketAddr, echo: SocketAddr) -> String {
    format!(
        r#"[[listeners]]
name = "web"
bind = "127.0.0.1:0"
[admin]
socket = "{admin}"
[limits]
shutdown_grace = "20s"
[policy]
module = "{module}"
[policy.config]
default = "{short}"
routes = [ {{ match = "long.test", upstream = "{echo}" }} ]
[upstreams]
allow = ["127.0.0.1/32"]
"#,
        admin = admin.display(),
        module = guests::example("static-routes").display(),
    )
}

async fn status(admin: &Path) -> anyhow::Result<Status> {
    let admin = admin.to_str().expect("utf-8 path");
    match client::call(admin, None, Request::Status, &[]).await? {
        Answer::Status(status) => Ok(*status),
        other => anyhow::bail!("{other:?}"),
    }
}

/// Stops a process this test did not start (an upgrade's new one) by pid.
struct Adopted(Option<u32>);

impl Drop for Adopted {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// One long transfer through limen to the echo upstream: 40 chunks of 64 KiB,
/// 80 ms apart (3.2 s), each read back; every byte must come back in order.
async fn long_transfer(addr: SocketAddr, seed: u8) -> anyhow::Result<()> {
    let hello = limen::offline::explain::synthesise("long.test", &[])?;
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(&hello).await?;
    let mut back = vec![0u8; hello.len()];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut back)).await??;
    anyhow::ensure!(back == hello, "the hello came back changed");
    for i in 0..40u8 {
        let chunk: Vec<u8> = (0..64 * 1024).map(|j| (j as u8) ^ i ^ seed).collect();
        tcp.write_all(&chunk).await?;
        let mut back = vec![0u8; chunk.len()];
        tokio::time::timeout(WAIT, tcp.read_exact(&mut back)).await??;
        anyhow::ensure!(back == chunk, "chunk {i} came back changed");
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_upgrades_under_load_refuse_or_reset_no_client() -> anyhow::Result<()> {
    let (short, _reports) = backend::raw(b"A").await?;
    let echo = backend::echo().await?;
    let admin = scratch("upgrade-admin.sock");
    let config = config_file(&toml(&admin, short, echo));
    let first = Process::start(&config, admin.clone())?;
    let started = first.generation(1).await?;
    let addr: SocketAddr = started.listeners[0].1.parse()?;
    let mut adopted = Adopted(None);
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let stop = stop.clone();
        load.spawn(async move {
            let hello = limen::offline::explain::synthesise("short.test", &[])?;
            let (mut asked, mut failures) = (0, Vec::new());
            // Bounded: at most 20,000 connections per client.
            while !stop.load(Ordering::Relaxed) && asked < 20_000 {
                asked += 1;
                match ask(addr, &hello).await {
                    Ok(reply) if reply == b"A" => {}
                    Ok(reply) => failures.push(format!("reply {reply:?}")),
                    Err(error) => failures.push(error.to_string()),
                }
            }
            anyhow::Ok((asked, failures))
        });
    }
    let long: Vec<_> = (0..2)
        .map(|seed| tokio::spawn(long_transfer(addr, seed)))
        .collect();
    let mut pids = vec![first.pid()];
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let path = admin.to_str().expect("utf-8 path");
        let ready = match client::call(path, None, Request::Upgrade, &[]).await? {
            Answer::Upgraded(ready) => ready,
            other => anyhow::bail!("upgrade: {other:?}\n{}", first.log()),
        };
        anyhow::ensure!(!pids.contains(&ready.pid), "a new process each time");
        pids.push(ready.pid);
        adopted.0 = Some(ready.pid);
        // Same content: only the load time differs.
        let id = |v: &str| v.split('@').next().map(str::to_owned);
        anyhow::ensure!(id(&ready.version) == id(&started.version));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut asked, mut failures) = (0, Vec::new());
    while let Some(done) = load.join_next().await {
        let (n, failed) = done??;
        asked += n;
        failures.extend(failed);
    }
    for transfer in long {
        transfer.await??;
    }
    assert!(asked > 100, "only {asked} connections under load");
    assert!(
        failures.is_empty(),
        "{} of {asked} failed: {failures:?}\n{}",
        failures.len(),
        first.log()
    );
    // The admin socket is the newest process's now.
    let last = status(&admin).await?;
    assert_eq!(Some(last.pid), adopted.0);
    assert_eq!(last.binary, limen::control::binary_version());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_that_refuses_its_configuration_leaves_the_old_serving() -> anyhow::Result<()>
{
    let (short, _reports) = backend::raw(b"A").await?;
    let echo = backend::echo().await?;
    let admin = scratch("upgrade-refused.sock");
    let config = config_file(&toml(&admin, short, echo));
    let old = Process::start(&config, admin.clone())?;
    let started = old.generation(1).await?;
    let addr: SocketAddr = started.listeners[0].1.parse()?;
    // The new process reads the file as it is now: its module is gone.
    let missing = PathBuf::from("/nonexistent/policy.wasm");
    let text = std::fs::read_to_string(&config)?;
    let module = guests::example("static-routes");
    std::fs::write(
        &config,
        text.replace(&*module.to_string_lossy(), &missing.to_string_lossy()),
    )?;
    let ran = limen(["upgrade", "--admin"]).arg(&admin).finish().await?;
    let said = ran.text();
    assert!(!ran.ok, "the command fails: {said}");
    assert!(
        said.contains("E070") && said.contains("this limen serves on"),
        "{said}"
    );
    assert!(
        said.contains("/nonexistent/policy.wasm"),
        "the new process's reason: {said}"
    );
    let hello = limen::offline::explain::synthesise("short.test", &[])?;
    assert_eq!(ask(addr, &hello).await?, b"A");
    assert_eq!(status(&admin).await?.pid, old.pid());
    assert!(
        old.log().contains("process.upgrade_refused"),
        "{}",
        old.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_is_routed_before_and_after_an_upgrade() -> anyhow::Result<()> {
    let (servers, ca) = h3_servers(&scratch("upgrade-quic"), &["a.test"]).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let admin = scratch("upgrade-quic.sock");
    let routes = format!(
        "{{ match = \"a.test\", upstream = \"{}\" }}",
        servers[0].addr()
    );
    let extra = format!("[admin]\nsocket = \"{}\"", admin.display());
    let config = config_file(&quic_config(port, true, &routes, "", &extra));
    let old = Process::start(&config, admin.clone())?;
    old.generation(1).await?;
    let quic: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(
        h3_get(quic, "a.test", &ca, "/before").await?,
        "a.test h3 /before"
    );
    let path = admin.to_str().expect("utf-8 path");
    let ready = match client::call(path, None, Request::Upgrade, &[]).await? {
        Answer::Upgraded(ready) => ready,
        other => anyhow::bail!("upgrade: {other:?}\n{}", old.log()),
    };
    let _adopted = Adopted(Some(ready.pid));
    // The old process stopped reading the QUIC socket at the hand-over:
    // every datagram of a new client reaches the new one.
    for i in 0..3 {
        let path = format!("/after-{i}");
        let body = h3_get(quic, "a.test", &ca, &path).await?;
        assert_eq!(body, format!("a.test h3 {path}"), "{}", old.log());
    }
    assert_eq!(status(&admin).await?.pid, ready.pid);
    Ok(())
}
