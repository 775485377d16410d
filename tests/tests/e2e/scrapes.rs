//! `/metrics` as Prometheus and curl take it: gzip when asked, several
//! scrapes on one kept-alive connection, HEAD without a body, and
//! `curl --compressed`; the status page's traffic over the last minute.

use std::io::Read;
use std::net::SocketAddr;
use std::process::Command;

use anyhow::Context;
use limen::observe::metrics::names;
use limen_e2e::harness::{METRICS_AND_STATUS, Running};
use limen_e2e::wait::eventually;
use limen_e2e::{backend, http};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::{WAIT, ask, run};

/// One response read off a kept-alive connection: its head, and its body
/// (`content-length` bytes; none for HEAD).
async fn next_response(
    conn: &mut BufReader<TcpStream>,
    head_only: bool,
) -> anyhow::Result<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        anyhow::ensure!(
            conn.read_line(&mut line).await? > 0,
            "closed after {head:?}"
        );
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(str::to_owned)
        })
        .context("content-length")?
        .trim()
        .parse()?;
    let mut body = vec![0; if head_only { 0 } else { length }];
    conn.read_exact(&mut body).await?;
    Ok((head, body))
}

fn gunzip(bytes: &[u8]) -> anyhow::Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text)?;
    Ok(text)
}

async fn start() -> anyhow::Result<(Running, SocketAddr)> {
    let metrics = "[metrics]\nbind = \"127.0.0.1:0\"";
    let routes = r#"routes = [ { match = "a.test", upstream = "127.0.0.1:9" } ]"#;
    let limen = Running::with_static_routes(routes, metrics).await?;
    let addr = limen.metrics_addr.context("metrics listener")?;
    Ok((limen, addr))
}

#[tokio::test]
async fn prometheus_scrapes_gzipped_on_one_connection_and_head_has_no_body() -> anyhow::Result<()> {
    let (limen, addr) = start().await?;
    let run = async {
        let mut conn = BufReader::new(TcpStream::connect(addr).await?);
        for _ in 0..3 {
            let scrape = "GET /metrics HTTP/1.1\r\nhost: limen\r\naccept-encoding: gzip\r\n\
                          accept: text/plain;version=0.0.4\r\n\r\n";
            conn.get_mut().write_all(scrape.as_bytes()).await?;
            let (head, body) = next_response(&mut conn, false).await?;
            let lower = head.to_ascii_lowercase();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(lower.contains("content-encoding: gzip"), "{head}");
            assert!(
                lower.contains("content-type: text/plain; version=0.0.4"),
                "{head}"
            );
            assert!(gunzip(&body)?.contains(names::CONNECTIONS));
        }
        // HEAD: the same head, no body; the next answer follows at once.
        conn.get_mut()
            .write_all(b"HEAD /metrics HTTP/1.1\r\nhost: limen\r\n\r\nGET /nope HTTP/1.1\r\nhost: limen\r\n\r\n")
            .await?;
        let (head, _) = next_response(&mut conn, true).await?;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let (head, body) = next_response(&mut conn, false).await?;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert!(String::from_utf8(body)?.contains("/metrics"));
        conn.get_mut()
            .write_all(b"POST /metrics HTTP/1.1\r\nhost: limen\r\ncontent-length: 0\r\n\r\n")
            .await?;
        let (head, _) = next_response(&mut conn, false).await?;
        assert!(head.starts_with("HTTP/1.1 405"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("allow: get, head"),
            "{head}"
        );
        anyhow::Ok(())
    };
    tokio::time::timeout(WAIT, run).await??;
    limen.stop().await
}

#[tokio::test]
async fn curl_compressed_gets_the_exposition() -> anyhow::Result<()> {
    let (limen, addr) = start().await?;
    let url = format!("http://{addr}/metrics");
    // `-sS`: stderr holds only an error, so what `run` returns is stdout.
    let curl = async |args: &[&str]| {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .arg(&url);
        let (ok, text) = run(command).await?;
        anyhow::ensure!(ok, "curl {args:?}: {text}");
        anyhow::Ok(text)
    };
    let headers = curl(&["--compressed", "-D", "-", "-o", "/dev/null"]).await?;
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-encoding: gzip"),
        "{headers}"
    );
    let text = curl(&["--compressed"]).await?;
    assert!(text.contains(names::CONNECTIONS), "{text}");
    let head = curl(&["-I"]).await?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    limen.stop().await
}

#[tokio::test]
async fn the_status_page_shows_connections_and_bytes_per_second() -> anyhow::Result<()> {
    let (backend, _) = backend::raw(b"A").await?;
    let routes = format!(r#"routes = [ {{ match = "a.test", upstream = "{backend}" }} ]"#);
    let limen = Running::with_static_routes(&routes, METRICS_AND_STATUS).await?;
    let addr = limen.status_addr.context("status listener")?;
    let hello = limen::hello::synthesise(Some("a.test"), &[]).map_err(anyhow::Error::msg)?;
    for _ in 0..10 {
        assert_eq!(ask(limen.addr, &hello).await?, b"A");
    }
    // Sampled once a second: two samples apart, the ten show as a rate.
    let status = eventually(
        WAIT,
        "a connection rate on /status.json",
        async || {
            let text = http::get(addr, "/status.json").await?.ok()?;
            anyhow::Ok(serde_json::from_str::<serde_json::Value>(&text)?)
        },
        |status| {
            status["rates"]["connections_per_s"]
                .as_f64()
                .is_some_and(|r| r > 0.0)
        },
    )
    .await?;
    assert!(
        status["rates"]["bytes_up_per_s"].as_f64() > Some(0.0),
        "{status}"
    );
    assert_eq!(status["bytes"]["up"], (10 * hello.len()) as u64, "{status}");
    let page = http::get(addr, "/status").await?.ok()?;
    assert!(page.contains("<h2>Traffic (last ") && page.contains("<th>connections/s</th>"));
    limen.stop().await
}
