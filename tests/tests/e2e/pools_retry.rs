//! A pool member dying with connections limen already made to it: frozen
//! (`SIGSTOP`, so connections queue in its kernel unanswered), then killed
//! (`SIGKILL`, so each of them is reset). Every one of them is replayed to
//! another member before that member's first byte; no client sees an
//! error, for passthrough and for a terminated connection alike.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use limen::observe::metrics::names;
use limen_e2e::harness::{Running, config};
use limen_e2e::{guests, pki::Pki};
use rustls::pki_types::ServerName;
use std::io::BufRead;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::{WAIT, scratch};
use crate::pools::ask;

/// A member in a process of its own (`pool-member`).
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    async fn start(id: u8) -> anyhow::Result<Process> {
        let child = Command::new(env!("CARGO_BIN_EXE_pool-member"))
            .arg(id.to_string())
            .stdout(Stdio::piped())
            .spawn()?;
        // Owned at once: its drop kills the child however this ends.
        let mut process = Process {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let stdout = process.child.stdout.take().expect("piped");
        // The member prints its address at once, or exits (end of file).
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        process.addr = line.trim().parse()?;
        Ok(process)
    }

    /// Freeze it: its kernel still completes connects and queues them.
    fn freeze(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -STOP: {status}");
        Ok(())
    }

    /// SIGKILL: every socket it holds closes, queued connections are reset.
    fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Members 1-3 in pool `web` with two retries and a TCP check.
fn pool(members: &[Process]) -> String {
    let list: Vec<String> = members.iter().map(|m| format!("\"{}\"", m.addr)).collect();
    format!(
        "[upstreams.pools.web]\nmembers = [{}]\nretries = 2\n\
         [upstreams.pools.web.health]\ncheck = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n\
         rise = 2\nfall = 2\neject_after = 0",
        list.join(", ")
    )
}

/// Four clients asking in a loop (bounded: 5,000 connections each) while
/// member 2 is frozen for 400 ms and then killed; every failure any client
/// saw.
async fn under_load<F, Fut>(members: &mut [Process], ask: F) -> anyhow::Result<Vec<String>>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = std::io::Result<u8>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (stop, ask) = (stop.clone(), ask.clone());
        clients.spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(error) = ask().await {
                    failures.push(error.to_string());
                }
            }
            failures
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    members[1].freeze()?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    members[1].kill()?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    while let Some(done) = clients.join_next().await {
        failures.extend(done?);
    }
    Ok(failures)
}

async fn three() -> anyhow::Result<[Process; 3]> {
    Ok([
        Process::start(1).await?,
        Process::start(2).await?,
        Process::start(3).await?,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_with_connections_queued_costs_no_passthrough_client_an_error()
-> anyhow::Result<()> {
    let mut members = three().await?;
    let limen = crate::pools::start(&pool(&members), "").await?;
    let addr = limen.addr;
    let failures = under_load(&mut members, move || ask(addr, None)).await?;
    assert!(failures.is_empty(), "client-visible failures: {failures:?}");
    // The frozen member's queued connections were reset at the kill, each
    // replayed to another member.
    let reset = [("pool", "web"), ("reason", "reset")];
    assert!(limen.counter(names::UPSTREAM_RETRIES, &reset) > 0);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_with_connections_queued_costs_no_terminated_client_an_error()
-> anyhow::Result<()> {
    let mut members = three().await?;
    let pki = Pki::new(&[])?;
    let dir = scratch("pool-retry-certs");
    let (pem, key) = pki.issue_files(&dir, "shop", &["www.test"], None)?;
    let routes = r#"routes = [ { match = "www.test", terminate = { certificate = "shop", pool = "web" } } ]"#;
    let toml = config(
        &guests::example("static-routes"),
        routes,
        "",
        &format!(
            "[metrics]\nbind = \"127.0.0.1:0\"\n\n[certificates.shop]\nchain = \"{}\"\nkey = \"{}\"\n\n{}",
            pem.display(),
            key.display(),
            pool(&members)
        ),
    );
    let limen = Running::start(&toml).await?;
    let (addr, client) = (limen.addr, pki.client_config(&[])?);
    let failures = under_load(&mut members, move || request(addr, client.clone())).await?;
    assert!(failures.is_empty(), "client-visible failures: {failures:?}");
    let reset = [("pool", "web"), ("reason", "reset")];
    assert!(limen.counter(names::UPSTREAM_RETRIES, &reset) > 0);
    limen.stop().await
}

/// A member that reads a request and closes without answering (one that
/// crashed while serving it). By default the request is replayed to the
/// next member, which answers; with `replay_requests = false` it is not:
/// each request that member read is a client that saw its connection end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_requests_false_sends_no_request_to_a_second_member() -> anyhow::Result<()> {
    let swallow = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let swallow_addr = swallow.local_addr()?;
    let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = read.clone();
    let swallowing = tokio::spawn(async move {
        while let Ok((mut stream, _)) = swallow.accept().await {
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                match tokio::io::AsyncReadExt::read_buf(&mut stream, &mut request).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            counted.fetch_add(
                usize::from(request.ends_with(b"\r\n\r\n")),
                Ordering::Relaxed,
            );
        }
    });
    let answering = Process::start(2).await?;
    let pki = Pki::new(&[])?;
    let (pem, key) = pki.issue_files(&scratch("replay-certs"), "shop", &["www.test"], None)?;
    let routes = r#"routes = [ { match = "www.test", terminate = { certificate = "shop", pool = "web" } } ]"#;
    for replay in [true, false] {
        let before = read.load(Ordering::Relaxed);
        let extra = format!(
            "[certificates.shop]\nchain = \"{}\"\nkey = \"{}\"\n\n[upstreams.pools.web]\n\
             members = [\"{swallow_addr}\", \"{}\"]\nretries = 1\nreplay_requests = {replay}",
            pem.display(),
            key.display(),
            answering.addr
        );
        let limen = Running::with_static_routes(routes, &extra).await?;
        let client = pki.client_config(&[])?;
        let mut failed = 0;
        for _ in 0..6 {
            match request(limen.addr, client.clone()).await {
                Ok(id) => assert_eq!(id, 2, "replay_requests = {replay}"),
                Err(_) => failed += 1,
            }
        }
        let swallowed = read.load(Ordering::Relaxed) - before;
        assert!(
            swallowed > 0,
            "round robin sent none to the swallowing member"
        );
        let want = if replay { 0 } else { swallowed };
        assert_eq!(
            failed, want,
            "replay_requests = {replay}: {swallowed} swallowed"
        );
        limen.stop().await?;
    }
    swallowing.abort();
    Ok(())
}

/// A request over TLS to limen for `www.test`, which it terminates: the id
/// of the member that answered.
async fn request(limen: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<u8> {
    let run = async {
        let tcp = TcpStream::connect(limen).await?;
        let name = ServerName::try_from("www.test").map_err(std::io::Error::other)?;
        let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
        tls.write_all(b"GET / HTTP/1.1\r\nhost: www.test\r\n\r\n")
            .await?;
        crate::pools::the_id(&mut tls).await
    };
    tokio::time::timeout(WAIT, run).await?
}
