//! Reject clients by JA4 fingerprint, route the rest by SNI.
//!
//! ```toml
//! [policy.config]
//! # JA4 prefixes to refuse with `access_denied`: a whole fingerprint, or a
//! # leading part such as "t13d1516h2_8daaf6152771" (same TLS 1.3 client,
//! # same cipher list) or "t10" (anything offering at most TLS 1.0).
//! deny = ["t13d1516h2_8daaf6152771_02713d6af862", "t10"]
//! default = "127.0.0.1:9451"          # any other name (else: unrecognized_name)
//! routes = [
//!   { match = "a.test", upstream = "127.0.0.1:9451" },
//!   { match = "*.wild.test", upstream = "127.0.0.1:9452" },
//! ]
//! ```
//! Connections that are not TLS are closed (no fingerprint to check).

use limen_guest::{
    Alert, ClientHello, Connection, Decision, HostPattern, Policy, RuleKind, config_from_json,
    report_rule,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    deny: Vec<String>,
    default: Option<String>,
    #[serde(default)]
    routes: Vec<RouteConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteConfig {
    #[serde(rename = "match")]
    pattern: String,
    upstream: String,
}

/// Built once per instance.
pub struct Ja4Gate {
    deny: Vec<String>,
    routes: Vec<(HostPattern, Decision)>,
    default: Option<Decision>,
}

impl Policy for Ja4Gate {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = config_from_json(config)?;
        if let Some(bad) = config.deny.iter().find(|p| p.is_empty() || !p.is_ascii()) {
            return Err(format!("deny: `{bad}` is not a JA4 prefix"));
        }
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let pattern =
                    HostPattern::parse(&r.pattern).map_err(|e| format!("routes[{i}]: {e}"))?;
                Ok((pattern, Decision::passthrough(r.upstream.clone())))
            })
            .collect::<Result<Vec<_>, String>>()?;
        // Shown as limen_tls_sni_routes_active and on the status page: the
        // routes, and each deny prefix (a rule too).
        limen_guest::report_routes(routes.len() + config.deny.len());
        Ok(Ja4Gate {
            deny: config.deny,
            routes,
            default: config.default.map(Decision::passthrough),
        })
    }

    fn route(&self, _conn: &Connection, hello: Option<&ClientHello>) -> Decision {
        let Some(hello) = hello else {
            report_rule(RuleKind::NoMatch);
            return Decision::Reject(Alert::Close);
        };
        let ja4 = hello.ja4();
        if self
            .deny
            .iter()
            .any(|prefix| ja4.starts_with(prefix.as_str()))
        {
            limen_guest::log::debug(&format!("denied JA4 {ja4}"));
            return Decision::Reject(Alert::AccessDenied);
        }
        let matched = hello.sni().and_then(|sni| {
            self.routes
                .iter()
                .find(|(pattern, _)| pattern.matches(&sni))
        });
        match (matched, &self.default) {
            (Some((pattern, decision)), _) => {
                report_rule(pattern.kind());
                decision.clone()
            }
            (None, Some(default)) => {
                report_rule(RuleKind::Fallback);
                default.clone()
            }
            (None, None) => {
                report_rule(RuleKind::NoMatch);
                Decision::Reject(Alert::UnrecognizedName)
            }
        }
    }
}

limen_guest::export_policy!(Ja4Gate);
