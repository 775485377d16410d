//! Resets are passed on: a side that aborts makes limen abort the other, so
//! a truncated stream never reaches a peer as a clean end (which a client
//! without TLS, or one that ignores close_notify, would take as complete).

use std::time::Duration;

use limen_e2e::guests;
use limen_e2e::harness::{Running, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::access_log::lines_of;
use crate::common::{WAIT, scratch};

/// A backend that reads the hello, sends `bytes`, then aborts (SO_LINGER 0).
async fn aborting_backend(bytes: usize) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut hello = [0u8; 5];
            if stream.read_exact(&mut hello).await.is_err() {
                continue;
            }
            let _ = stream.write_all(&vec![b'x'; bytes]).await;
            // Let the bytes leave before the abort overtakes them.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    });
    Ok(addr)
}

fn logged(path: &std::path::Path, upstream: std::net::SocketAddr) -> String {
    config(
        &guests::example("static-routes"),
        &format!(r#"default = "{upstream}""#),
        "",
        &format!(
            "[access_log]\npath = \"{}\"\nformat = \"json\"",
            path.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_resets_the_client() -> anyhow::Result<()> {
    let upstream = aborting_backend(64 * 1024).await?;
    let log = scratch("access.log");
    let limen = Running::start(&logged(&log, upstream)).await?;
    let mut client = TcpStream::connect(limen.addr).await?;
    client
        .write_all(&limen::offline::explain::synthesise("a.test", &[])?)
        .await?;
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, client.read_to_end(&mut got)).await?;
    // Whatever part of the 64 KiB arrived before the reset, the stream must
    // not look complete.
    let error = read.expect_err("the client saw a clean end of a truncated stream");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    assert!(got.len() <= 64 * 1024);
    let lines = lines_of(&log, 1).await?;
    let line: serde_json::Value = serde_json::from_str(&lines[0])?;
    assert_eq!(line["end"], "upstream_reset", "{line}");
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_resets_the_upstream() -> anyhow::Result<()> {
    // A backend that keeps the connection open and reports how it ended.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let upstream = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Ok((mut stream, _)) = listener.accept().await {
            let mut sink = Vec::new();
            let _ = tx.send(stream.read_to_end(&mut sink).await);
        }
    });
    let log = scratch("access.log");
    let limen = Running::start(&logged(&log, upstream)).await?;
    let client = TcpStream::connect(limen.addr).await?;
    let mut client = client;
    client
        .write_all(&limen::offline::explain::synthesise("a.test", &[])?)
        .await?;
    client.write_all(b"partial request").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO))?;
    drop(client);
    let ended = tokio::time::timeout(WAIT, rx).await??;
    let error = ended.expect_err("the upstream saw a clean end of an aborted request");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    let lines = lines_of(&log, 1).await?;
    let line: serde_json::Value = serde_json::from_str(&lines[0])?;
    assert_eq!(line["end"], "client_reset", "{line}");
    limen.stop().await
}
