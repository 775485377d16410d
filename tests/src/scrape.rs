//! `/metrics` read the way Prometheus reads it: over HTTP, then the text
//! exposition parsed into series.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::http;

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
        let body = http::get(addr, "/metrics").await?.ok()?;
        Ok(Scrape::parse(&body))
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
