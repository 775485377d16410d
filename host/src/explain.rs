//! `limen explain`: what limen would do with one ClientHello, offline.
//!
//! The hello comes from hex, a file, or is synthesised by a real rustls client
//! for `--sni`/`--alpn`, so the policy sees exactly what it would see on the
//! wire. Nothing touches the network: a name upstream is checked against the
//! allow-list's name rules only.

use serde_json::{Value, json};
use std::net::SocketAddr;

use crate::config::{Config, FailMode};
use crate::decision::{Decision, Upstream, UpstreamAddr};
use crate::hello::{self, HelloSummary, Progress};
use crate::policy::{Connection, Policy, PolicyError};

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
}

/// Why explain could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `--sni` is not a name rustls would send.
    #[error("E020 cannot build a ClientHello for `{0}`: {1}")]
    Synthesis(String, String),
}

/// Build one JSON object: the parsed `hello`, the policy's `decision`, and the
/// `outcome` limen would carry out (after the allow-list and fail mode).
pub async fn explain(
    config: &Config,
    source: HelloSource,
    client: SocketAddr,
) -> Result<Value, ExplainError> {
    let bytes = match source {
        HelloSource::Bytes(bytes) => bytes,
        HelloSource::Sni { sni, alpn } => synthesise(&sni, &alpn)?,
    };
    let listener = config.listeners.first().map(|l| (l.name.clone(), l.bind));
    let (name, local) = listener.unwrap_or_else(|| ("".into(), client));
    let conn = Connection {
        client,
        local,
        listener: name,
    };
    let hello = match hello::frame(&bytes, config.limits.hello_max_bytes) {
        Ok(Progress::Complete(framed)) => HelloSummary::parse(&framed)
            .map(Some)
            .map_err(|e| e.to_string()),
        Ok(Progress::NotTls) => Ok(None),
        Ok(Progress::NeedMore) => {
            Err("incomplete ClientHello (limen would wait, then time out)".to_owned())
        }
        Err(e) => Err(e.to_string()),
    };
    let hello = match hello {
        Ok(hello) => hello,
        Err(error) => {
            return Ok(
                json!({ "hello": null, "hello_error": error, "decision": null,
                "outcome": { "action": "close", "reason": "the hello never reaches the policy" } }),
            );
        }
    };
    let policy = Policy::load_offline(&config.policy).await?;
    let (decision, fuel_used, outcome) = match policy.decide(&conn, hello.as_ref()).await {
        Ok(verdict) => {
            let outcome = match refusal(config, &verdict.decision) {
                None => decision_json(&verdict.decision),
                Some(why) => fail_mode(config, &why),
            };
            (
                decision_json(&verdict.decision),
                Some(verdict.fuel_used),
                outcome,
            )
        }
        Err(error) => (
            json!({ "error": error.to_string(), "kind": error.kind() }),
            None,
            fail_mode(config, &error.to_string()),
        ),
    };
    Ok(json!({
        "hello": hello,
        "connection": { "client": conn.client.to_string(), "local": conn.local.to_string(), "listener": &*conn.listener },
        "decision": decision,
        "fuel_used": fuel_used,
        "outcome": outcome,
    }))
}

/// Why limen would refuse this decision, if it would.
fn refusal(config: &Config, decision: &Decision) -> Option<String> {
    match decision {
        Decision::Passthrough(up) => upstream_refusal(config, up),
        Decision::Terminate(t) => {
            if config.has_certificate(&t.certificate) {
                upstream_refusal(config, &t.upstream)
            } else {
                Some(format!(
                    "no certificate named `{}` in [certificates]",
                    t.certificate
                ))
            }
        }
        Decision::Reject(_) => None,
    }
}

fn upstream_refusal(config: &Config, up: &Upstream) -> Option<String> {
    match &up.addr {
        UpstreamAddr::Ip(ip) if !config.allow.allows_addr(*ip) => {
            Some(format!("upstream {ip} is not in the allow-list"))
        }
        UpstreamAddr::Name(name, port) if !config.allow.allows_name(name.as_ref(), *port) => {
            Some(format!(
                "upstream {} is allowed only if it resolves to an allowed address (not checked offline)",
                up.addr
            ))
        }
        _ => None,
    }
}

fn fail_mode(config: &Config, why: &str) -> Value {
    let mut outcome = match &config.policy.on_error {
        FailMode::Reject(alert) => decision_json(&Decision::Reject(*alert)),
        FailMode::Fallback(up) => decision_json(&Decision::Passthrough(up.clone())),
    };
    outcome["on_error"] = json!(why);
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
