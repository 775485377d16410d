//! HTTP/1.1 as the tests speak it to limen's metrics and status listeners
//! (`/metrics`; `/status`, `/status.json`): one request per connection (`connection: close`), the answer read
//! to the server's close.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wait::WAIT;

/// One response.
#[derive(Debug)]
pub struct Response {
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status: String,
    /// The whole head (status line and headers).
    pub head: String,
    /// The body.
    pub body: String,
}

impl Response {
    /// The body of a `200`; any other answer is an error that shows it.
    pub fn ok(self) -> anyhow::Result<String> {
        anyhow::ensure!(
            self.status.starts_with("HTTP/1.1 200"),
            "{}\n\n{}",
            self.head,
            self.body
        );
        Ok(self.body)
    }
}

/// `GET path` from `addr`, bounded in time ([`WAIT`]).
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Response> {
    let run = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: limen\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut response = String::new();
        tcp.read_to_string(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(WAIT, run).await??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("GET {path}: no HTTP head in {response:?}"))?;
    Ok(Response {
        status: head.lines().next().unwrap_or_default().to_owned(),
        head: head.to_owned(),
        body: body.to_owned(),
    })
}
