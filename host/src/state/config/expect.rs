//! `[[policy.expect]]`: sample connections and the decisions a policy must
//! make for them before it may go live (at start and on every swap).

use std::net::SocketAddr;

use rustls::pki_types::ServerName;

use super::file::FileExpect;
use super::{ConfigError, ListenerConfig};
use crate::decision::{Alert, UpstreamAddr};
use crate::policy::Expectation;

/// Most samples a config may list: each runs on every swap.
const MAX_EXPECTATIONS: usize = 256;

pub(super) fn expectations(
    file: &[FileExpect],
    listeners: &[ListenerConfig],
) -> Result<Vec<Expectation>, ConfigError> {
    if file.len() > MAX_EXPECTATIONS {
        return Err(ConfigError::Invalid(format!(
            "policy.expect: at most {MAX_EXPECTATIONS} entries"
        )));
    }
    file.iter()
        .enumerate()
        .map(|(i, e)| {
            let bad = |why: String| ConfigError::Invalid(format!("policy.expect[{i}]: {why}"));
            if let Some(sni) = &e.sni {
                ServerName::try_from(sni.as_str())
                    .map_err(|_| bad(format!("sni `{sni}` is not a DNS name")))?;
            }
            let listener = match &e.listener {
                None => &listeners[0],
                Some(name) => listeners
                    .iter()
                    .find(|l| *l.name == **name)
                    .ok_or_else(|| bad(format!("no listener named `{name}`")))?,
            };
            Ok(Expectation {
                sni: e.sni.clone(),
                alpn: e.alpn.clone(),
                client: e
                    .client
                    .unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 1], 50000))),
                listener: listener.name.clone(),
                local: listener.bind,
                decision: canonical(&e.decision).map_err(bad)?,
            })
        })
        .collect()
}

/// The decision text as limen prints decisions, so comparing strings
/// compares decisions (`A.Test:443` and `a.test:443` are the same upstream).
pub(crate) fn canonical(text: &str) -> Result<String, String> {
    let upstream = |addr: &str| {
        UpstreamAddr::parse(addr)
            .map(|a| a.to_string())
            .map_err(|e| format!("decision `{text}`: {e}"))
    };
    match text.split_once(':') {
        Some(("passthrough", addr)) => Ok(format!("passthrough:{}", upstream(addr)?)),
        Some(("terminate", rest)) => match rest.split_once(':') {
            Some((cert, addr)) if !cert.is_empty() => {
                Ok(format!("terminate:{cert}:{}", upstream(addr)?))
            }
            _ => Err(format!("decision `{text}`: write terminate:CERT:HOST:PORT")),
        },
        Some(("reject", alert)) => Alert::from_name(alert)
            .map(|a| format!("reject:{}", a.name()))
            .ok_or_else(|| format!("decision `{text}`: unknown alert `{alert}`")),
        _ => Err(format!(
            "decision `{text}`: write passthrough:HOST:PORT, terminate:CERT:HOST:PORT or reject:ALERT"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn decisions_are_canonicalised_or_refused() {
        assert_eq!(
            canonical("passthrough:A.Test:443").unwrap(),
            "passthrough:a.test:443"
        );
        assert_eq!(
            canonical("terminate:web:127.0.0.1:80").unwrap(),
            "terminate:web:127.0.0.1:80"
        );
        assert_eq!(canonical("passthrough:web").unwrap(), "passthrough:web");
        assert_eq!(
            canonical("reject:unrecognized-name").unwrap(),
            "reject:unrecognized_name"
        );
        for bad in [
            "pass:1.2.3.4:1",
            "reject:nope",
            "terminate::1.2.3.4:5",
            "passthrough:x.test",
            "passthrough:",
        ] {
            assert!(canonical(bad).is_err(), "{bad}");
        }
    }
}
