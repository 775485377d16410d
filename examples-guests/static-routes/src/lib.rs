//! A first-match routing table.
//!
//! ```toml
//! [policy.config]
//! default = "127.0.0.1:9451"          # TLS with no SNI, or no route matched
//! plain = "127.0.0.1:9000"            # first bytes not TLS (else: closed)
//! routes = [
//!   { match = "a.test", upstream = "127.0.0.1:9451" },
//!   { match = "*.wild.test", upstream = "127.0.0.1:9452", proxy_protocol = "v2" },  # one label
//!   # PROXY v2 with TLVs: the SNI (AUTHORITY), the client's ALPN, limen's JA4 (0xE0):
//!   { match = "tlv.test", upstream = "127.0.0.1:9452", proxy_protocol = "v2", proxy_tlvs = ["authority", "alpn", "ja4"] },
//!   { match = ".deep.test", upstream = "127.0.0.1:9452" },                            # any depth
//!   { match = "~^node[0-9]+\\.rx\\.test$", upstream = "127.0.0.1:9453" },
//!   { match = "blocked.test", reject = "access_denied" },
//!   # a member of limen's [upstreams.pools.web], picked by the pool's balance:
//!   { match = "www.test", pool = "web" },
//!   # limen finishes the handshake with [certificates.secure], forwards plaintext:
//!   { match = "secure.test", terminate = { certificate = "secure", upstream = "127.0.0.1:9080" } },
//!   { match = "shop.test", terminate = { certificate = "shop", pool = "web" } },
//!   # ...or re-encrypts (upstream_tls = true: verify the upstream's host; a
//!   # string: that name), offering the client h2 or http/1.1:
//!   { match = "api.test", terminate = { certificate = "api", upstream = "10.0.0.5:443",
//!     upstream_tls = "api.internal", alpn = ["h2", "http/1.1"], proxy_protocol = "v2" } },
//! ]
//! ```
//! Any route may be limited, by route or by client address (`per = "client"`),
//! with a token bucket and a cap on open connections; a connection over a
//! limit is rejected with `over_limit` (default `access_denied`):
//! ```toml
//! { match = "api.test", pool = "web", rate = { per_second = 5, burst = 5 },
//!   max_connections = 100, per = "client", over_limit = "access_denied" },
//! ```
//! The counts live in limen, so they survive a swap to a new version of
//! this policy (keyed by the route's `match`, and its `transport` if any).
//!
//! A route may apply to one transport only, `transport = "tcp"` or
//! `"quic"` (absent: both), so one name can go to an HTTP/3 upstream over
//! QUIC and to another over TCP. First match still wins, among the routes
//! for the hello's transport:
//! ```toml
//! { match = "www.test", transport = "quic", upstream = "127.0.0.1:9443" },
//! { match = "www.test", upstream = "127.0.0.1:8443" },   # TCP, and QUIC no more
//! ```
//! A table with no `transport` route never asks limen for the transport.
//!
//! A name no route matches, with no `default`, is rejected with
//! `unrecognized_name`. A server_name that is not a DNS name (an IP literal
//! such as `82.81.46.13`, which some VPN clients send) matches only an exact
//! route written the same way.

use std::collections::HashMap;

use limen_guest::{
    Alert, ClientHello, Connection, Decision, HostPattern, Policy, ProxyProtocol, ProxyTlvs,
    RuleKind, Terminate, TerminateExt, Transport, Upstream, UpstreamExt, config_from_json,
    report_rule,
};
use serde::Deserialize;

mod route_limits;
use route_limits::{Limits, RateConfig};

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
    transport: Option<String>,
    upstream: Option<String>,
    pool: Option<String>,
    reject: Option<String>,
    terminate: Option<TerminateConfig>,
    proxy_protocol: Option<String>,
    #[serde(default)]
    proxy_tlvs: Vec<String>,
    rate: Option<RateConfig>,
    max_connections: Option<u32>,
    per: Option<String>,
    over_limit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminateConfig {
    certificate: String,
    upstream: Option<String>,
    pool: Option<String>,
    #[serde(default)]
    upstream_tls: UpstreamTlsConfig,
    #[serde(default)]
    alpn: Vec<String>,
    proxy_protocol: Option<String>,
    #[serde(default)]
    proxy_tlvs: Vec<String>,
}

/// `false` (plaintext), `true` (TLS, verify the upstream's host) or a name.
#[derive(Deserialize)]
#[serde(untagged)]
enum UpstreamTlsConfig {
    On(bool),
    Name(String),
}

impl Default for UpstreamTlsConfig {
    fn default() -> Self {
        UpstreamTlsConfig::On(false)
    }
}

/// The table, built once per instance.
pub struct StaticRoutes {
    /// Per transport (see [`slot`]), exact names to the index of the route
    /// that wins for that name: most tables are mostly exact names, and a
    /// hash lookup keeps a 100-route table at one probe. Which earlier
    /// wildcard or regex (if any) matches an exact name is known from the
    /// name and transport alone, so `init` settles it once instead of every
    /// hit matching the patterns above it. Only the TCP map is filled when
    /// no route names a transport: it then serves both.
    exact: [HashMap<String, usize>; 2],
    /// Wildcard and regex routes in table order, with their index.
    patterns: Vec<(usize, HostPattern)>,
    /// Each route's transport, if it applies to one only.
    only: Vec<Option<Transport>>,
    /// Some route names a transport: only then is the hello asked for it.
    by_transport: bool,
    actions: Vec<Decision>,
    /// Each route's limits, if it has any.
    limits: Vec<Option<Limits>>,
    /// Each route's rule kind, reported to limen's metrics.
    kinds: Vec<RuleKind>,
    default: Option<Decision>,
    plain: Option<Decision>,
}

impl Policy for StaticRoutes {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = config_from_json(config)?;
        let by_transport = config.routes.iter().any(|r| r.transport.is_some());
        let transports: &[Transport] = if by_transport {
            &[Transport::Tcp, Transport::Quic]
        } else {
            &[Transport::Tcp]
        };
        let mut table = StaticRoutes {
            exact: Default::default(),
            patterns: Vec::new(),
            only: Vec::with_capacity(config.routes.len()),
            by_transport,
            actions: Vec::with_capacity(config.routes.len()),
            limits: Vec::with_capacity(config.routes.len()),
            kinds: Vec::with_capacity(config.routes.len()),
            default: config.default.map(Decision::passthrough),
            plain: config.plain.map(Decision::passthrough),
        };
        for (index, route) in config.routes.into_iter().enumerate() {
            let pattern =
                HostPattern::parse(&route.pattern).map_err(|e| format!("routes[{index}]: {e}"))?;
            let only = match route.transport.as_deref() {
                None => None,
                Some(name) => Some(Transport::from_name(name).ok_or_else(|| {
                    format!("routes[{index}]: transport `{name}`: use \"tcp\" or \"quic\"")
                })?),
            };
            table.actions.push(
                action(&route).map_err(|e| format!("routes[{index}] ({}): {e}", route.pattern))?,
            );
            table
                .limits
                .push(Limits::of(&route, only).map_err(|e| format!("routes[{index}]: {e}"))?);
            table.kinds.push(pattern.kind());
            table.only.push(only);
            match pattern {
                HostPattern::Exact(name) => {
                    for &transport in transports {
                        if only.is_none_or(|t| t == transport) {
                            table.exact[slot(transport)]
                                .entry(name.clone())
                                .or_insert(index);
                        }
                    }
                }
                other => table.patterns.push((index, other)),
            }
        }
        for &transport in transports {
            for (name, index) in table.exact[slot(transport)].iter_mut() {
                let earlier = first_pattern(&table.patterns, &table.only, transport, name, *index);
                *index = earlier.unwrap_or(*index);
            }
        }
        // Shown as limen_tls_sni_routes_active and on the status page.
        limen_guest::report_routes(table.actions.len());
        Ok(table)
    }

    fn route(&self, conn: &Connection, hello: Option<&ClientHello>) -> Decision {
        let Some(hello) = hello else {
            return fallback(&self.plain, Alert::Close);
        };
        // One host call, made only for a table that routes by transport;
        // otherwise the one map, in TCP's slot, serves both.
        let transport = if self.by_transport {
            hello.transport()
        } else {
            Transport::Tcp
        };
        let matched = match hello.sni() {
            Some(sni) => self.first_match(&sni, transport),
            // Not a DNS name (an IP literal such as FortiClient sends): only
            // an exact route names it, as sent. One more host call, only then.
            None => hello.server_name().and_then(|sent| {
                self.exact[slot(transport)]
                    .get(&sent.to_ascii_lowercase())
                    .copied()
            }),
        };
        match matched {
            Some(index) => {
                report_rule(self.kinds[index]);
                match &self.limits[index] {
                    Some(limits) if !limits.admit(conn) => Decision::Reject(limits.over_limit),
                    _ => self.actions[index].clone(),
                }
            }
            None => fallback(&self.default, Alert::UnrecognizedName),
        }
    }
}

impl StaticRoutes {
    /// The first route for `transport`, in table order, that `sni` matches.
    fn first_match(&self, sni: &str, transport: Transport) -> Option<usize> {
        match self.exact[slot(transport)].get(sni) {
            Some(&index) => Some(index),
            None => first_pattern(&self.patterns, &self.only, transport, sni, usize::MAX),
        }
    }
}

/// Which of `StaticRoutes::exact` serves a transport.
fn slot(transport: Transport) -> usize {
    match transport {
        Transport::Tcp => 0,
        Transport::Quic => 1,
    }
}

/// The first wildcard or regex route for `transport` before `limit` that
/// matches `name` (`only`: each route's transport, if it names one).
fn first_pattern(
    patterns: &[(usize, HostPattern)],
    only: &[Option<Transport>],
    transport: Transport,
    name: &str,
    limit: usize,
) -> Option<usize> {
    patterns
        .iter()
        .take_while(|(index, _)| *index < limit)
        .filter(|(index, _)| only[*index].is_none_or(|t| t == transport))
        .find(|(_, pattern)| pattern.matches(name))
        .map(|(index, _)| *index)
}

/// The default route, or the alert when there is none (a miss).
fn fallback(default: &Option<Decision>, alert: Alert) -> Decision {
    match default {
        Some(decision) => {
            report_rule(RuleKind::Fallback);
            decision.clone()
        }
        None => {
            report_rule(RuleKind::NoMatch);
            Decision::Reject(alert)
        }
    }
}

fn action(route: &RouteConfig) -> Result<Decision, String> {
    let target = target_of(&route.upstream, &route.pool);
    match (target, &route.reject, &route.terminate) {
        (Some(target), None, None) => Ok(Decision::Passthrough(upstream_of(
            target?,
            route.proxy_protocol.as_deref(),
            &route.proxy_tlvs,
        )?)),
        (None, Some(alert), None) => Alert::from_name(alert)
            .map(Decision::Reject)
            .ok_or_else(|| format!("unknown alert `{alert}`")),
        (None, None, Some(t)) if route.proxy_protocol.is_none() && route.proxy_tlvs.is_empty() => {
            let target =
                target_of(&t.upstream, &t.pool).ok_or("terminate: give `upstream` or `pool`")??;
            let upstream = upstream_of(target, t.proxy_protocol.as_deref(), &t.proxy_tlvs)?;
            let mut terminate = Terminate::to(t.certificate.clone(), upstream).with_alpn(&t.alpn);
            terminate = match &t.upstream_tls {
                UpstreamTlsConfig::On(false) => terminate,
                UpstreamTlsConfig::On(true) => terminate.reencrypt(None),
                UpstreamTlsConfig::Name(name) => terminate.reencrypt(Some(name.clone())),
            };
            Ok(Decision::Terminate(terminate))
        }
        (None, None, Some(_)) => Err("put proxy_protocol and proxy_tlvs inside `terminate`".into()),
        _ => Err("give exactly one of `upstream`, `pool`, `reject` or `terminate`".into()),
    }
}

/// Where `upstream = "host:port"` or `pool = "name"` sends a connection (a
/// pool's name is an upstream address to limen); `None` when neither is given.
fn target_of<'a>(
    upstream: &'a Option<String>,
    pool: &'a Option<String>,
) -> Option<Result<&'a str, String>> {
    match (upstream, pool) {
        (Some(upstream), None) => Some(Ok(upstream)),
        (None, Some(pool)) if pool.contains([':', '.']) || pool.is_empty() => Some(Err(format!(
            "pool `{pool}`: a pool's name has no dots or port (write `upstream` for an address)"
        ))),
        (None, Some(pool)) => Some(Ok(pool)),
        (Some(_), Some(_)) => Some(Err("give `upstream` or `pool`, not both".into())),
        (None, None) => None,
    }
}

fn upstream_of(
    address: &str,
    proxy_protocol: Option<&str>,
    tlvs: &[String],
) -> Result<Upstream, String> {
    let upstream = Upstream::to(address);
    let upstream = match proxy_protocol {
        None => upstream,
        Some("v1") => upstream.with_proxy_protocol(ProxyProtocol::V1),
        Some("v2") => upstream.with_proxy_protocol(ProxyProtocol::V2),
        Some(other) => return Err(format!("proxy_protocol `{other}`: use \"v1\" or \"v2\"")),
    };
    if tlvs.is_empty() {
        return Ok(upstream);
    }
    if proxy_protocol != Some("v2") {
        return Err("proxy_tlvs needs proxy_protocol = \"v2\"".into());
    }
    let mut flags = ProxyTlvs::empty();
    for tlv in tlvs {
        flags |= match tlv.as_str() {
            "authority" => ProxyTlvs::AUTHORITY,
            "alpn" => ProxyTlvs::ALPN,
            "ja4" => ProxyTlvs::JA4,
            other => return Err(format!("proxy_tlvs `{other}`: use authority, alpn, ja4")),
        };
    }
    Ok(upstream.with_proxy_tlvs(flags))
}

limen_guest::export_policy!(StaticRoutes);
