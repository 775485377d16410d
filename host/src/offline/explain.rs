//! `limen explain`: what limen would do with one ClientHello, offline.
//!
//! The hello comes from hex, a file, a QUIC client's captured datagrams, or
//! is synthesised by a real rustls client for `--sni`/`--alpn`, so the
//! policy sees exactly what it would see on the wire. Nothing touches the network: a name upstream is checked against the
//! allow-list's name rules only.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::decision::{Decision, Upstream, UpstreamAddr};
use crate::hello::{self, Examined, HelloSummary, InitialReader, QuicProgress, Transport};
use crate::policy::{Connection, Failure, LoadError, Offline, Policy, decide_offline};
use crate::state::config::Config;

/// Where the ClientHello comes from.
#[derive(Debug, Clone)]
pub enum HelloSource {
    /// Synthesise one with rustls for this SNI and ALPN list.
    Sni {
        /// Server name to send.
        sni: String,
        /// ALPN protocols to offer.
        alpn: Vec<String>,
    },
    /// Raw bytes as they arrive on the wire (TLS records).
    Bytes(Vec<u8>),
    /// A QUIC client's datagrams as they arrive (its Initial packets, in
    /// any order): decided as a QUIC listener would.
    Quic(Vec<Vec<u8>>),
}

/// Why explain could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] LoadError),
    /// `--sni` is not a name rustls would send.
    #[error("E020 cannot build a ClientHello for `{0}`: {1}")]
    Synthesis(String, String),
}

impl ExplainError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        match self {
            ExplainError::Policy(error) => error.code(),
            ExplainError::Synthesis(..) => "E020",
        }
    }
}

/// Build one JSON object: the parsed `hello`, the policy's `decision`, and the
/// `outcome` limen would carry out: the same `plan` as a live connection
/// (allow-list, limen's own listeners, certificates, terminate needing a
/// hello), then the fail mode. Only DNS is not consulted.
pub async fn explain(
    config: &Config,
    source: HelloSource,
    client: SocketAddr,
) -> Result<Value, ExplainError> {
    let (bytes, datagrams) = match source {
        HelloSource::Bytes(bytes) => (bytes, None),
        HelloSource::Sni { sni, alpn } => (synthesise(&sni, &alpn)?, None),
        HelloSource::Quic(datagrams) => (Vec::new(), Some(datagrams)),
    };
    // The listener such a client would reach: the first of its transport.
    let transport = match datagrams {
        Some(_) => Transport::Quic,
        None => Transport::Tcp,
    };
    let listener = config
        .listeners
        .iter()
        .find(|l| l.transport == transport)
        .or(config.listeners.first())
        .map(|l| (l.name.clone(), l.bind));
    let (name, local) = listener.unwrap_or_else(|| ("".into(), client));
    let conn = Connection {
        client,
        local,
        listener: name,
    };
    let hello = match datagrams {
        Some(datagrams) => match quic_hello(&datagrams, config.limits.hello_max_bytes) {
            Ok(hello) => Some(Arc::new(hello)),
            Err(error) => return Ok(unread(&error)),
        },
        None => match hello::examine(&bytes, config.limits.hello_max_bytes) {
            Ok(Examined::Hello(hello)) => Some(Arc::new(hello)),
            Ok(Examined::NotTls) => None,
            Ok(Examined::NeedMore) => return Ok(unread(Examined::INCOMPLETE)),
            Err(error) => return Ok(unread(&error.to_string())),
        },
    };
    let policy = Policy::load_offline(&config.policy).await?;
    let summary = hello.as_deref();
    let rules = Some(&config.policy.rules);
    let (decision, fuel_used, outcome) = match decide_offline(
        (&policy, None),
        &conn,
        hello.as_ref(),
        rules,
    )
    .await
    {
        Ok(Offline { verdict, refused }) => {
            let shown = decision_json(&verdict.decision);
            let outcome = match refused {
                None => with_dns_note(config, &verdict.decision, shown.clone()),
                Some(refusal) => fail_mode(config, &Failure::Refused(refusal)),
            };
            (shown, Some(verdict.fuel_used), outcome)
        }
        Err(error) => (
            json!({ "error": error.to_string(), "kind": error.kind().as_str(), "code": error.code() }),
            None,
            fail_mode(config, &Failure::Call(error)),
        ),
    };
    Ok(json!({
        // The version the access log names for a connection it decides.
        "policy": &*policy.version().id,
        "hello": summary,
        "connection": { "client": conn.client.to_string(), "local": conn.local.to_string(), "listener": &*conn.listener },
        "decision": decision,
        "fuel_used": fuel_used,
        "outcome": outcome,
    }))
}

/// A QUIC client's hello from its datagrams, read as a QUIC listener reads
/// them: a datagram the reader refuses is skipped (the listener drops it),
/// unless the refusal is final.
fn quic_hello(datagrams: &[Vec<u8>], cap: usize) -> Result<HelloSummary, String> {
    let mut reader = InitialReader::new(cap);
    let mut skipped = Vec::new();
    for (i, datagram) in datagrams.iter().enumerate() {
        match reader.feed(datagram) {
            Ok(QuicProgress::Complete(framed)) => {
                return HelloSummary::parse(&framed).map_err(|e| e.to_string());
            }
            Ok(QuicProgress::NeedMore) => {}
            Err(error) if error.is_final() => return Err(error.to_string()),
            Err(error) => skipped.push(format!("datagram {}: {}", i + 1, error.reason())),
        }
    }
    Err(format!(
        "the Initials do not complete a ClientHello (skipped: {})",
        if skipped.is_empty() {
            "none".into()
        } else {
            skipped.join(", ")
        }
    ))
}

/// The answer for bytes that never become a hello: nothing reaches the policy.
fn unread(error: &str) -> Value {
    json!({ "hello": null, "hello_error": error, "decision": null,
        "outcome": { "action": "close", "reason": "the hello never reaches the policy" } })
}

/// A name upstream that only an address rule could admit depends on what
/// it resolves to, which explain does not look up.
fn with_dns_note(config: &Config, decision: &Decision, mut outcome: Value) -> Value {
    let upstream = match decision {
        Decision::Passthrough(up) => up,
        Decision::Terminate(t) => &t.upstream,
        Decision::Reject(_) => return outcome,
    };
    if let UpstreamAddr::Name(name, port) = &upstream.addr
        && !config.allow.allows_name(name.as_ref(), *port)
    {
        outcome["note"] = json!(format!(
            "upstream {} is allowed only if it resolves to an allowed address (not checked offline)",
            upstream.addr
        ));
    }
    outcome
}

fn fail_mode(config: &Config, failure: &Failure) -> Value {
    let mut outcome = decision_json(&config.policy.on_error.decision());
    outcome["on_error"] = json!(failure.to_string());
    outcome["kind"] = json!(failure.kind().as_str());
    outcome
}

fn decision_json(decision: &Decision) -> Value {
    match decision {
        Decision::Passthrough(up) => {
            json!({ "action": "passthrough", "upstream": upstream_json(up) })
        }
        Decision::Terminate(t) => json!({
            "action": "terminate", "certificate": t.certificate, "upstream": upstream_json(&t.upstream),
            "upstream_tls": t.reencrypt.as_ref().map(|tls| json!({
                "server_name": tls.server_name.as_ref().map(|n| n.to_str().into_owned()),
            })),
            "alpn": t.alpn.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>(),
        }),
        Decision::Reject(alert) => json!({ "action": "reject", "alert": alert.name() }),
    }
}

fn upstream_json(up: &Upstream) -> Value {
    let tlvs = &up.proxy_tlvs;
    let tlvs: Vec<&str> = [
        ("authority", tlvs.authority),
        ("alpn", tlvs.alpn),
        ("ja4", tlvs.ja4),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    json!({
        "address": up.addr.to_string(),
        "proxy_protocol": up.proxy_protocol.map(|v| format!("{v:?}").to_lowercase()),
        "connect_timeout_ms": up.connect_timeout.map(|t| t.as_millis() as u64),
        "proxy_tlvs": tlvs,
    })
}

/// A real ClientHello from rustls for `sni` offering `alpn`: the TLS records
/// a rustls client would send first.
pub fn synthesise(sni: &str, alpn: &[String]) -> Result<Vec<u8>, ExplainError> {
    hello::synthesise(Some(sni), alpn).map_err(|e| ExplainError::Synthesis(sni.to_owned(), e))
}
