//! The cases file (TOML):
//!
//! ```toml
//! fuel = 10_000_000        # optional limits; limen's defaults otherwise
//! timeout = "50ms"
//! memory = "32MiB"
//!
//! [[case]]
//! name = "service and namespace"          # optional
//! sni = "web-prod.apps.example"           # or hello_file / hello_hex / not_tls
//! alpn = ["h2"]
//! client = "203.0.113.7:40000"            # optional
//! listener = "public"                     # optional, with local
//! local = "0.0.0.0:443"
//! expect = "passthrough:web.prod.svc.cluster.local:443"
//! rule = "regex"                          # optional: what report-rule said
//! ```
//!
//! `expect` is a decision as limen prints them (`passthrough:HOST:PORT`,
//! `terminate:CERT:HOST:PORT`, `reject:ALERT`) or `error:KIND` for a policy
//! that must fail (`trap`, `fuel`, `deadline`, `memory`, `invalid_decision`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::decision::Rule;
use crate::state::config::canonical_decision;

/// Why a cases file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaseError {
    /// Not TOML, or not the shape above.
    #[error("E050 cases file: {0}")]
    Syntax(String),
    /// A case that cannot be run as written.
    #[error("E051 case {index} ({name}): {why}")]
    Invalid {
        /// Position in the file, from 1.
        index: usize,
        /// Its name, or its SNI.
        name: String,
        /// What is wrong.
        why: String,
    },
}

/// Limits of every call in a run (`None`: limen's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Fuel per `route` call.
    pub fuel: Option<u64>,
    /// Wall-clock limit per call.
    pub timeout: Option<Duration>,
    /// Linear memory per instance, in bytes.
    pub memory: Option<u64>,
}

/// A parsed cases file.
#[derive(Debug, Clone)]
pub struct CaseFile {
    /// Limits for the run.
    pub limits: Limits,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

/// Where a case's ClientHello comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseHello {
    /// A real rustls ClientHello for this SNI (none: no server_name) and ALPN.
    Synthesised {
        /// Server name, if any.
        sni: Option<String>,
        /// ALPN protocols offered.
        alpn: Vec<String>,
    },
    /// TLS records read from a file (relative to the cases file).
    File(PathBuf),
    /// TLS records given in hex.
    Bytes(Vec<u8>),
    /// The connection is not TLS: the policy gets no hello.
    NotTls,
}

/// What a case must come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// This decision, in limen's canonical text.
    Decision(String),
    /// The policy fails with this kind (`PolicyError::kind`).
    Error(String),
}

/// One connection and what the policy must decide for it.
#[derive(Debug, Clone)]
pub struct Case {
    /// Shown in the report.
    pub name: String,
    /// The hello the policy sees.
    pub hello: CaseHello,
    /// Client address.
    pub client: SocketAddr,
    /// Listener name.
    pub listener: String,
    /// Listener address.
    pub local: SocketAddr,
    /// The expected outcome.
    pub expect: Expected,
    /// The rule kind the policy must report, if given.
    pub rule: Option<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    fuel: Option<u64>,
    timeout: Option<String>,
    memory: Option<ByteSize>,
    #[serde(default)]
    case: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Option<String>,
    sni: Option<String>,
    #[serde(default)]
    alpn: Vec<String>,
    hello_file: Option<PathBuf>,
    hello_hex: Option<String>,
    #[serde(default)]
    not_tls: bool,
    client: Option<SocketAddr>,
    listener: Option<String>,
    local: Option<SocketAddr>,
    expect: String,
    rule: Option<String>,
}

/// Errors that can be raised by the policy, as `error:KIND` names them.
const ERROR_KINDS: [&str; 5] = ["trap", "fuel", "deadline", "memory", "invalid_decision"];

impl CaseFile {
    /// Parse a cases file's text.
    pub fn parse(text: &str) -> Result<CaseFile, CaseError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| CaseError::Syntax(e.to_string()))?;
        let timeout = raw
            .timeout
            .map(|t| {
                humantime::parse_duration(&t)
                    .map_err(|e| CaseError::Syntax(format!("timeout `{t}`: {e}")))
            })
            .transpose()?;
        // The bounds limen's config puts on `[policy] timeout`.
        if timeout.is_some_and(|t| t < Duration::from_millis(1) || t > Duration::from_secs(1)) {
            return Err(CaseError::Syntax(
                "timeout must be between 1ms and 1s".into(),
            ));
        }
        if raw.fuel == Some(0) {
            return Err(CaseError::Syntax("fuel must be > 0".into()));
        }
        if raw.memory.is_some_and(|m| m.as_u64() < 128 * 1024) {
            return Err(CaseError::Syntax(
                "memory must be at least 128KiB, as in limen's config".into(),
            ));
        }
        if raw.case.is_empty() {
            return Err(CaseError::Syntax("no [[case]] entries".into()));
        }
        let cases = raw
            .case
            .into_iter()
            .enumerate()
            .map(|(i, c)| case(i + 1, c))
            .collect::<Result<_, _>>()?;
        Ok(CaseFile {
            limits: Limits {
                fuel: raw.fuel,
                timeout,
                memory: raw.memory.map(|m| m.as_u64()),
            },
            cases,
        })
    }
}

fn case(index: usize, raw: RawCase) -> Result<Case, CaseError> {
    let name = raw
        .name
        .clone()
        .or_else(|| raw.sni.clone())
        .unwrap_or_else(|| "(no sni)".into());
    let bad = |why: String| CaseError::Invalid {
        index,
        name: name.clone(),
        why,
    };
    let sources = usize::from(raw.hello_file.is_some())
        + usize::from(raw.hello_hex.is_some())
        + usize::from(raw.not_tls);
    if sources > 1 || (sources == 1 && (raw.sni.is_some() || !raw.alpn.is_empty())) {
        return Err(bad(
            "give one of sni/alpn, hello_file, hello_hex or not_tls".into(),
        ));
    }
    let hello = if let Some(file) = raw.hello_file {
        CaseHello::File(file)
    } else if let Some(text) = raw.hello_hex {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        CaseHello::Bytes(hex::decode(text).map_err(|e| bad(format!("hello_hex: {e}")))?)
    } else if raw.not_tls {
        CaseHello::NotTls
    } else {
        CaseHello::Synthesised {
            sni: raw.sni,
            alpn: raw.alpn,
        }
    };
    let expect = match raw.expect.split_once(':') {
        Some(("error", kind)) if ERROR_KINDS.contains(&kind) => Expected::Error(kind.into()),
        Some(("error", kind)) => {
            return Err(bad(format!(
                "expect `error:{kind}`: the kinds are {}",
                ERROR_KINDS.join(", ")
            )));
        }
        _ => Expected::Decision(canonical_decision(&raw.expect).map_err(bad)?),
    };
    let rule = raw
        .rule
        .map(|r| {
            Rule::ALL
                .into_iter()
                .find(|k| k.name() == r)
                .ok_or_else(|| {
                    bad(format!(
                        "rule `{r}`: exact, wildcard, regex, fallback or no-match"
                    ))
                })
        })
        .transpose()?;
    Ok(Case {
        name,
        hello,
        client: raw
            .client
            .unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 1], 50000))),
        listener: raw.listener.unwrap_or_else(|| "public".into()),
        local: raw
            .local
            .unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 2], 443))),
        expect,
        rule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cases_file_parses_with_its_defaults() {
        let file = CaseFile::parse(
            r#"
            fuel = 5
            timeout = "50ms"
            [[case]]
            sni = "A.test"
            expect = "passthrough:A.Test:443"
            rule = "exact"
            [[case]]
            name = "plain text"
            not_tls = true
            expect = "reject:close"
            [[case]]
            sni = "loop.test"
            expect = "error:fuel"
            "#,
        )
        .unwrap();
        assert_eq!(file.limits.fuel, Some(5));
        assert_eq!(file.limits.timeout, Some(Duration::from_millis(50)));
        assert_eq!(file.cases.len(), 3);
        let first = &file.cases[0];
        assert_eq!(
            first.expect,
            Expected::Decision("passthrough:a.test:443".into())
        );
        assert_eq!(first.rule, Some(Rule::Exact));
        assert_eq!(first.listener, "public");
        assert_eq!(file.cases[1].hello, CaseHello::NotTls);
        assert_eq!(file.cases[2].expect, Expected::Error("fuel".into()));
    }

    #[test]
    fn bad_cases_are_refused_with_their_position() {
        for (text, needle) in [
            ("[[case]]\nexpect = \"pass:x\"", "E051 case 1"),
            ("[[case]]\nexpect = \"error:oops\"", "the kinds are"),
            (
                "[[case]]\nexpect = \"reject:close\"\nrule = \"big\"",
                "rule `big`",
            ),
            (
                "[[case]]\nnot_tls = true\nsni = \"a.test\"\nexpect = \"reject:close\"",
                "one of",
            ),
            ("[[case]]\nexpect = \"reject:close\"\nbogus = 1", "E050"),
            ("fuel = 1", "no [[case]]"),
            (
                "fuel = 0\n[[case]]\nexpect = \"reject:close\"",
                "fuel must be > 0",
            ),
            (
                "timeout = \"2s\"\n[[case]]\nexpect = \"reject:close\"",
                "between 1ms and 1s",
            ),
        ] {
            let error = CaseFile::parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }
}
