//! `/metrics` read the way Prometheus reads it: over HTTP, then the text
//! exposition parsed into series.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One scrape: every sample, keyed by its series as exposed
/// (`name{label="value",...}`, or `name` alone).
#[derive(Debug, Default)]
pub struct Scrape {
    samples: HashMap<String, f64>,
    /// The exposition as served, for failure messages.
    pub text: String,
}

impl Scrape {
    /// GET /metrics, bounded in time.
    pub async fn get(addr: SocketAddr) -> anyhow::Result<Scrape> {
        let run = async {
            let mut tcp = TcpStream::connect(addr).await?;
            tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: limen\r\n\r\n")
                .await?;
            let mut response = String::new();
            tcp.read_to_string(&mut response).await?;
            anyhow::Ok(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(10), run).await??;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow::anyhow!("no HTTP head: {response}"))?;
        anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
        Ok(Scrape::parse(body))
    }

    /// Parse a text exposition.
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Scrape {
            samples,
            text: text.to_owned(),
        }
    }

    /// A series' value; 0 when absent (a series appears at its first use).
    pub fn value(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// How much a series grew since `before`.
    pub fn delta(&self, before: &Scrape, series: &str) -> f64 {
        self.value(series) - before.value(series)
    }
}
