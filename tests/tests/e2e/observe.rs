//! Watching limen from outside: `/metrics` scraped over HTTP.

use std::net::SocketAddr;

use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{WAIT, ask};

/// One HTTP request to limen's metrics endpoint: (status line, body).
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(String, String)> {
    let run = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nhost: limen\r\n\r\n").as_bytes())
            .await?;
        let mut response = String::new();
        tcp.read_to_string(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(WAIT, run).await??;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

/// The value of the sample line `name{labels}` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_over_http() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let toml = config(
        &guests::example("static-routes"),
        &format!(r#"default = "{a}""#),
        "",
        "[metrics]\nbind = \"127.0.0.1:0\"",
    );
    let limen = Running::start(&toml).await?;
    let metrics = limen.metrics_addr.expect("metrics endpoint");
    let hello = limen::explain::synthesise("t.test", &[])?;
    for _ in 0..3 {
        assert_eq!(ask(limen.addr, &hello).await?, b"A");
    }
    let (status, body) = get(metrics, "/metrics").await?;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        sample(&body, "limen_connections_total{listener=\"public\"}"),
        Some(3.0),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("limen_policy_info{version=\"") && l.ends_with("\"} 1")),
        "{body}"
    );
    let (status, _) = get(metrics, "/").await?;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    limen.stop().await
}
