//! One access log line: what a finished connection did, and its two
//! renderings. Pure: the writer thread formats, the connection only fills
//! the record (moving what it already owns; nothing is copied for the log).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::decision::{Alert, UpstreamAddr};
use crate::hello::HelloSummary;
use crate::outcome::{End, RouteResult};

/// A finished connection.
#[derive(Debug)]
pub(crate) struct Record {
    /// When it ended.
    pub(crate) time: SystemTime,
    pub(crate) listener: Arc<str>,
    pub(crate) client: SocketAddr,
    /// Its ClientHello, if it sent one (SNI and ALPN are read from it).
    pub(crate) hello: Option<Arc<HelloSummary>>,
    pub(crate) action: ActionTaken,
    /// How the policy's decision counted; `None` if the policy was not asked.
    pub(crate) result: Option<RouteResult>,
    pub(crate) upstream: Option<UpstreamAddr>,
    pub(crate) policy_version: Option<Arc<str>>,
    /// Client to upstream (the replayed hello included), and back.
    pub(crate) bytes_up: u64,
    pub(crate) bytes_down: u64,
    pub(crate) peek: Duration,
    pub(crate) connect: Option<Duration>,
    pub(crate) total: Duration,
    /// How it ended (see the README's table).
    pub(crate) end: End,
    /// A QUIC flow's datagrams each way (`None` for TCP, whose line stays
    /// as it was).
    pub(crate) datagrams: Option<(u64, u64)>,
}

/// What limen did with the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActionTaken {
    /// Closed before a decision (the ClientHello could not be gathered).
    None,
    Passthrough,
    /// Terminated with the named certificate.
    Terminate(String),
    Reject(Alert),
    /// Decided, but the upstream could not be resolved or reached.
    Unreachable,
    /// A TLS-ALPN-01 validation connection limen answered itself.
    AcmeChallenge,
}

impl ActionTaken {
    fn name(&self) -> &'static str {
        match self {
            ActionTaken::None => "none",
            ActionTaken::Passthrough => "passthrough",
            ActionTaken::Terminate(_) => "terminate",
            ActionTaken::Reject(_) => "reject",
            ActionTaken::Unreachable => "unreachable",
            ActionTaken::AcmeChallenge => "acme_challenge",
        }
    }
}

impl Record {
    fn sni(&self) -> Option<&str> {
        self.hello.as_ref()?.sni().map(|n| n.as_ref())
    }

    fn alpn(&self) -> Option<String> {
        let protocols = self.hello.as_ref()?.alpn();
        (protocols.len() > 0).then(|| {
            protocols
                .map(|p| String::from_utf8_lossy(p))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    fn detail(&self) -> Option<String> {
        match &self.action {
            ActionTaken::Terminate(certificate) => Some(certificate.clone()),
            ActionTaken::Reject(alert) => Some(alert.name().to_owned()),
            _ => None,
        }
    }

    /// `time key=value ...` with `-` for absent values; a value that is
    /// not plain printable ASCII is written as a JSON string.
    pub(crate) fn text(&self, out: &mut String) {
        let _ = write!(
            out,
            "{} listener={} client={}",
            humantime::format_rfc3339_micros(self.time),
            self.listener,
            self.client
        );
        field(out, "sni", self.sni());
        field(out, "alpn", self.alpn().as_deref());
        let fingerprints = self.hello.as_deref().map(HelloSummary::fingerprints);
        field(out, "ja4", fingerprints.map(|f| f.ja4.as_str()));
        field(out, "ja3", fingerprints.map(|f| f.ja3_hash.as_str()));
        field(out, "action", Some(self.action.name()));
        field(out, "detail", self.detail().as_deref());
        field(
            out,
            "upstream",
            self.upstream.as_ref().map(ToString::to_string).as_deref(),
        );
        field(out, "result", self.result.map(RouteResult::as_str));
        field(out, "policy", self.policy_version.as_deref());
        let _ = write!(
            out,
            " bytes_up={} bytes_down={} peek_ms={:.3}",
            self.bytes_up,
            self.bytes_down,
            millis(self.peek)
        );
        match self.connect {
            Some(connect) => {
                let _ = write!(out, " connect_ms={:.3}", millis(connect));
            }
            None => out.push_str(" connect_ms=-"),
        }
        let _ = write!(out, " total_ms={:.3} end={}", millis(self.total), self.end);
        if let Some((up, down)) = self.datagrams {
            let _ = write!(
                out,
                " transport=quic datagrams_up={up} datagrams_down={down}"
            );
        }
    }

    /// One JSON object; absent values are `null`.
    pub(crate) fn json(&self, out: &mut String) {
        let mut value = serde_json::json!({
            "time": humantime::format_rfc3339_micros(self.time).to_string(),
            "listener": &*self.listener,
            "client": self.client.to_string(),
            "sni": self.sni(),
            "alpn": self.alpn(),
            "ja4": self.hello.as_ref().map(|h| &h.fingerprints().ja4),
            "ja3": self.hello.as_ref().map(|h| &h.fingerprints().ja3_hash),
            "action": self.action.name(),
            "detail": self.detail(),
            "upstream": self.upstream.as_ref().map(ToString::to_string),
            "result": self.result.map(RouteResult::as_str),
            "policy": self.policy_version.as_deref(),
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "peek_ms": round(millis(self.peek)),
            "connect_ms": self.connect.map(|c| round(millis(c))),
            "total_ms": round(millis(self.total)),
            "end": self.end.as_str(),
        });
        if let (Some((up, down)), Some(object)) = (self.datagrams, value.as_object_mut()) {
            object.insert("transport".into(), "quic".into());
            object.insert("datagrams_up".into(), up.into());
            object.insert("datagrams_down".into(), down.into());
        }
        let _ = write!(out, "{value}");
    }
}

fn field(out: &mut String, key: &str, value: Option<&str>) {
    let _ = write!(out, " {key}=");
    match value {
        None => out.push('-'),
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"') => {
            out.push_str(v);
        }
        Some(v) => {
            let _ = write!(out, "{}", serde_json::Value::from(v));
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Microsecond precision, so JSON carries `0.052`, not `0.052000000000000005`.
fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            listener: "public".into(),
            client: "127.0.0.1:40000".parse().unwrap(),
            hello: None,
            action: ActionTaken::Reject(Alert::UnrecognizedName),
            result: Some(RouteResult::Reject),
            upstream: None,
            policy_version: Some("abc@t".into()),
            bytes_up: 0,
            bytes_down: 0,
            datagrams: None,
            peek: Duration::from_micros(52),
            connect: None,
            total: Duration::from_micros(1500),
            end: End::Rejected,
        }
    }

    #[test]
    fn text_line_has_every_field_in_order() {
        let mut out = String::new();
        record().text(&mut out);
        assert_eq!(
            out,
            "2027-01-15T08:00:00.000000Z listener=public client=127.0.0.1:40000 sni=- alpn=- \
             ja4=- ja3=- action=reject detail=unrecognized_name upstream=- result=reject policy=abc@t \
             bytes_up=0 bytes_down=0 peek_ms=0.052 connect_ms=- total_ms=1.500 end=rejected"
        );
    }

    #[test]
    fn json_line_parses_with_nulls_for_absent_values() {
        let mut out = String::new();
        record().json(&mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["peek_ms"], 0.052);
        assert!(v["sni"].is_null() && v["connect_ms"].is_null());
        assert_eq!(v["detail"], "unrecognized_name");
    }

    #[test]
    fn odd_text_values_are_quoted() {
        let mut out = String::new();
        field(&mut out, "alpn", Some("h2,my proto\""));
        assert_eq!(out, r#" alpn="h2,my proto\"""#);
    }
}
