//! Graceful shutdown: stop accepting at once, let open connections finish,
//! close what is still open when the grace period ends.

use std::time::{Duration, Instant};

use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{WAIT, echoes, hello};

/// limen whose policy sends everything to a fresh echo upstream, with `limits`.
async fn limen_to_echo(limits: &str) -> anyhow::Result<Running> {
    let up = backend::echo().await?;
    let routes = format!("default = \"{up}\"");
    Running::with_static_routes(&routes, limits).await
}

async fn open_routed(limen: &Running) -> anyhow::Result<TcpStream> {
    let mut tcp = TcpStream::connect(limen.addr).await?;
    echoes(&mut tcp, &hello("small-a.test.bin")).await?;
    Ok(tcp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_finish_and_new_ones_are_refused() -> anyhow::Result<()> {
    let limen = limen_to_echo("[limits]\nshutdown_grace = \"10s\"").await?;
    let addr = limen.addr;
    let mut tcp = open_routed(&limen).await?;
    let started = Instant::now();
    let stopping = tokio::spawn(limen.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener must be closed"
    );
    // The open connection still carries bytes both ways.
    echoes(&mut tcp, b"still here").await?;
    assert!(
        !stopping.is_finished(),
        "limen must wait for the open connection"
    );
    drop(tcp);
    tokio::time::timeout(WAIT, stopping).await???;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop should follow the last close, not the grace period"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_closes_what_is_left() -> anyhow::Result<()> {
    let limen = limen_to_echo("[limits]\nshutdown_grace = \"300ms\"").await?;
    let mut tcp = open_routed(&limen).await?;
    let started = Instant::now();
    tokio::time::timeout(WAIT, limen.stop()).await??;
    assert!(started.elapsed() >= Duration::from_millis(250));
    let n = tokio::time::timeout(WAIT, tcp.read(&mut [0u8; 8]))
        .await?
        .unwrap_or(0);
    assert_eq!(
        n, 0,
        "the connection is closed once the grace period is over"
    );
    Ok(())
}

/// No byte either way for `idle_timeout`: limen closes both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() -> anyhow::Result<()> {
    let limen = limen_to_echo("[limits]\nidle_timeout = \"300ms\"").await?;
    let mut tcp = open_routed(&limen).await?;
    let started = Instant::now();
    let n = tokio::time::timeout(WAIT, tcp.read(&mut [0u8; 8]))
        .await?
        .unwrap_or(0);
    assert_eq!(n, 0, "closed after the idle timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    limen.stop().await
}

/// Connections still peeking, still waiting for the policy, or piping when
/// the grace period ends each leave their access log line, `end=shutdown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_closed_connections_each_leave_an_access_log_line() -> anyhow::Result<()> {
    let up = backend::echo().await?;
    let path = crate::common::scratch("shutdown-access.log");
    let toml = config(
        &guests::example("misbehave"),
        &format!("upstream = \"{up}\""),
        "timeout = \"1s\"",
        &format!(
            "[limits]\nshutdown_grace = \"300ms\"\nhello_timeout = \"30s\"\n\
             [access_log]\npath = \"{}\"\nformat = \"json\"",
            path.display()
        ),
    );
    let limen = Running::start(&toml).await?;
    // Peeking: a record header announcing 512 bytes, then nothing.
    let mut peeking = TcpStream::connect(limen.addr).await?;
    peeking.write_all(b"\x16\x03\x01\x02\x00").await?;
    // Deciding: the policy sleeps 10 s in a WASI call for `sleep.*`.
    let mut deciding = TcpStream::connect(limen.addr).await?;
    deciding
        .write_all(&limen::offline::explain::synthesise("sleep.test", &[])?)
        .await?;
    // Piping: routed to the echo upstream, and kept open.
    let hello = limen::offline::explain::synthesise("print.test", &[])?;
    let mut piping = TcpStream::connect(limen.addr).await?;
    echoes(&mut piping, &hello).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(WAIT, limen.stop()).await??;

    let text = std::fs::read_to_string(&path)?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 3, "one line per connection:\n{text}");
    for line in &lines {
        assert_eq!(line["end"], "shutdown", "{line}");
    }
    let by_sni = |sni: Option<&str>| {
        lines
            .iter()
            .find(|l| l["sni"].as_str() == sni)
            .unwrap_or_else(|| panic!("no line for {sni:?} in\n{text}"))
    };
    let peeked = by_sni(None);
    assert_eq!(
        (&peeked["action"], &peeked["result"]),
        (&"none".into(), &serde_json::Value::Null)
    );
    let decided = by_sni(Some("sleep.test"));
    assert_eq!(
        (&decided["action"], &decided["result"]),
        (&"none".into(), &serde_json::Value::Null)
    );
    let piped = by_sni(Some("print.test"));
    assert_eq!(piped["action"], "passthrough");
    assert_eq!(piped["bytes_up"], hello.len());
    drop((peeking, deciding, piping));
    Ok(())
}
