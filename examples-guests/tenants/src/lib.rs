//! Per-tenant pools and limits: `<tenant>.<domain>` goes to the tenant's
//! pool, within its rate and its cap on open connections, both kept by
//! limen (so they hold across every worker and survive a swap).
//!
//! ```toml
//! [policy.config]
//! domain = "saas.test"
//! pool = "shared"                  # tenants without a pool of their own
//! limits = { per_second = 5, burst = 10, max_connections = 20 }   # the default
//! [policy.config.tenants]
//! acme = { pool = "acme", per_second = 50, burst = 100, max_connections = 500 }
//! free = { max_connections = 2 }   # the rest from `limits`
//! ```
//! A name outside `domain`, or no SNI: `unrecognized_name`. A tenant over
//! its rate or cap: `access_denied`. The Python twin is `tenants-py`; both
//! pass `cases.toml`.

use std::collections::HashMap;

use limen_guest::{
    Alert, ClientHello, Connection, Decision, Policy, RuleKind, config_from_json, limits,
    report_rule,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    domain: String,
    pool: String,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    tenants: HashMap<String, Tenant>,
}

/// A tenant's limits; what one leaves out comes from the default.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct Limits {
    per_second: Option<u32>,
    burst: Option<u32>,
    max_connections: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tenant {
    pool: Option<String>,
    #[serde(flatten)]
    limits: Limits,
}

/// The table, built once per instance.
pub struct Tenants {
    /// `.saas.test`: the suffix a tenant's name ends with.
    suffix: String,
    pool: String,
    limits: Limits,
    tenants: HashMap<String, (Option<String>, Limits)>,
}

impl Policy for Tenants {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = config_from_json(config)?;
        let or = |tenant: Limits| Limits {
            per_second: tenant.per_second.or(config.limits.per_second),
            burst: tenant.burst.or(config.limits.burst),
            max_connections: tenant.max_connections.or(config.limits.max_connections),
        };
        let tenants = config
            .tenants
            .iter()
            .map(|(name, t)| (name.to_ascii_lowercase(), (t.pool.clone(), or(t.limits))))
            .collect::<HashMap<_, _>>();
        limen_guest::report_routes(tenants.len());
        Ok(Tenants {
            suffix: format!(".{}", config.domain.trim_matches('.').to_ascii_lowercase()),
            pool: config.pool,
            limits: config.limits,
            tenants,
        })
    }

    fn route(&self, _conn: &Connection, hello: Option<&ClientHello>) -> Decision {
        let Some(sni) = hello.and_then(ClientHello::sni) else {
            report_rule(RuleKind::NoMatch);
            return Decision::reject(Alert::UnrecognizedName);
        };
        // Exactly one label before the domain: the tenant.
        let tenant = match sni.strip_suffix(&self.suffix) {
            Some(label) if !label.is_empty() && !label.contains('.') => label,
            _ => {
                report_rule(RuleKind::NoMatch);
                return Decision::reject(Alert::UnrecognizedName);
            }
        };
        let (pool, limits) = match self.tenants.get(tenant) {
            Some((pool, limits)) => {
                report_rule(RuleKind::Exact);
                (pool.as_deref().unwrap_or(&self.pool), *limits)
            }
            None => {
                report_rule(RuleKind::Wildcard);
                (self.pool.as_str(), self.limits)
            }
        };
        let key = format!("tenant:{tenant}");
        if let (Some(per_second), Some(burst)) = (limits.per_second, limits.burst)
            && !limits::take(&key, per_second, burst)
        {
            return Decision::reject(Alert::AccessDenied);
        }
        if let Some(max) = limits.max_connections
            && !limits::acquire(&key, max)
        {
            return Decision::reject(Alert::AccessDenied);
        }
        Decision::pool(pool)
    }
}

limen_guest::export_policy!(Tenants);
