//! A first-match routing table.
//!
//! ```toml
//! [policy.config]
//! default = "127.0.0.1:9451"          # TLS with no SNI, or no route matched
//! plain = "127.0.0.1:9000"            # first bytes not TLS (else: closed)
//! routes = [
//!   { match = "a.test", upstream = "127.0.0.1:9451" },
//!   { match = "*.wild.test", upstream = "127.0.0.1:9452", proxy_protocol = "v2" },  # one label
//!   { match = ".deep.test", upstream = "127.0.0.1:9452" },                            # any depth
//!   { match = "~^node[0-9]+\\.rx\\.test$", upstream = "127.0.0.1:9453" },
//!   { match = "blocked.test", reject = "access_denied" },
//! ]
//! ```
//! A name no route matches, with no `default`, is rejected with
//! `unrecognized_name`.

use std::collections::HashMap;

use limen_guest::{
    Alert, ClientHello, Connection, Decision, HostPattern, Policy, ProxyProtocol, Upstream,
    UpstreamExt, config_from_json,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    default: Option<String>,
    plain: Option<String>,
    #[serde(default)]
    routes: Vec<RouteConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteConfig {
    #[serde(rename = "match")]
    pattern: String,
    upstream: Option<String>,
    reject: Option<String>,
    proxy_protocol: Option<String>,
}

/// The table, built once per instance.
pub struct StaticRoutes {
    /// Exact names, to the index of their first route: most tables are mostly
    /// exact names, and a hash lookup keeps a 100-route table at one probe.
    exact: HashMap<String, usize>,
    /// Wildcard and regex routes in table order, with their index.
    patterns: Vec<(usize, HostPattern)>,
    actions: Vec<Decision>,
    default: Option<Decision>,
    plain: Option<Decision>,
}

impl Policy for StaticRoutes {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = config_from_json(config)?;
        let mut table = StaticRoutes {
            exact: HashMap::new(),
            patterns: Vec::new(),
            actions: Vec::with_capacity(config.routes.len()),
            default: config.default.map(Decision::passthrough),
            plain: config.plain.map(Decision::passthrough),
        };
        for (index, route) in config.routes.into_iter().enumerate() {
            let pattern =
                HostPattern::parse(&route.pattern).map_err(|e| format!("routes[{index}]: {e}"))?;
            table.actions.push(
                action(&route).map_err(|e| format!("routes[{index}] ({}): {e}", route.pattern))?,
            );
            match pattern {
                HostPattern::Exact(name) => {
                    table.exact.entry(name).or_insert(index);
                }
                other => table.patterns.push((index, other)),
            }
        }
        Ok(table)
    }

    fn route(&self, _conn: &Connection, hello: Option<&ClientHello>) -> Decision {
        let Some(hello) = hello else {
            return self.plain.clone().unwrap_or(Decision::Reject(Alert::Close));
        };
        let matched = hello.sni.as_deref().and_then(|sni| self.first_match(sni));
        match matched {
            Some(index) => self.actions[index].clone(),
            None => self
                .default
                .clone()
                .unwrap_or(Decision::Reject(Alert::UnrecognizedName)),
        }
    }
}

impl StaticRoutes {
    fn first_match(&self, sni: &str) -> Option<usize> {
        let exact = self.exact.get(sni).copied();
        let limit = exact.unwrap_or(usize::MAX);
        self.patterns
            .iter()
            .take_while(|(index, _)| *index < limit)
            .find(|(_, pattern)| pattern.matches(sni))
            .map(|(index, _)| *index)
            .or(exact)
    }
}

fn action(route: &RouteConfig) -> Result<Decision, String> {
    match (&route.upstream, &route.reject) {
        (Some(upstream), None) => {
            let mut upstream = Upstream::to(upstream.clone());
            if let Some(version) = &route.proxy_protocol {
                upstream = upstream.with_proxy_protocol(match version.as_str() {
                    "v1" => ProxyProtocol::V1,
                    "v2" => ProxyProtocol::V2,
                    other => return Err(format!("proxy_protocol `{other}`: use \"v1\" or \"v2\"")),
                });
            }
            Ok(Decision::Passthrough(upstream))
        }
        (None, Some(alert)) => Alert::from_name(alert)
            .map(Decision::Reject)
            .ok_or_else(|| format!("unknown alert `{alert}`")),
        _ => Err("give exactly one of `upstream` or `reject`".into()),
    }
}

limen_guest::export_policy!(StaticRoutes);
