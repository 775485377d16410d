//! A route's limits: a token bucket and a cap on open connections, kept in
//! limen (so they survive a swap of this policy) under the route's key.

use limen_guest::{Alert, Connection, Transport, limits};
use serde::Deserialize;

use crate::RouteConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateConfig {
    per_second: u32,
    burst: u32,
}

/// A route's limits, checked on each connection it matches.
pub(crate) struct Limits {
    /// `route:<match>`: the key's stem, so state survives a swap.
    key: String,
    per_client: bool,
    rate: Option<(u32, u32)>,
    max_connections: Option<u32>,
    pub(crate) over_limit: Alert,
}

impl Limits {
    pub(crate) fn of(
        route: &RouteConfig,
        only: Option<Transport>,
    ) -> Result<Option<Limits>, String> {
        if route.rate.is_none() && route.max_connections.is_none() {
            return match (&route.per, &route.over_limit) {
                (None, None) => Ok(None),
                _ => Err("`per` and `over_limit` need `rate` or `max_connections`".into()),
            };
        }
        let per_client = match route.per.as_deref() {
            None | Some("route") => false,
            Some("client") => true,
            Some(other) => return Err(format!("per `{other}`: use \"route\" or \"client\"")),
        };
        let over_limit = match &route.over_limit {
            None => Alert::AccessDenied,
            Some(name) => {
                Alert::from_name(name).ok_or_else(|| format!("unknown alert `{name}`"))?
            }
        };
        Ok(Some(Limits {
            // A route without `transport` keeps the key it had before
            // routes could name one: its counts survive the upgrade.
            key: match only {
                None => format!("route:{}", route.pattern),
                Some(t) => format!("route:{}|{}", route.pattern, t.as_str()),
            },
            per_client,
            rate: route.rate.as_ref().map(|r| (r.per_second, r.burst)),
            max_connections: route.max_connections,
            over_limit,
        }))
    }

    /// Whether this connection is within the limits (taking its token and slot).
    pub(crate) fn admit(&self, conn: &Connection) -> bool {
        let key = if self.per_client {
            format!("{}|{}", self.key, conn.client.ip.to_std())
        } else {
            self.key.clone()
        };
        if let Some((per_second, burst)) = self.rate
            && !limits::take(&key, per_second, burst)
        {
            return false;
        }
        self.max_connections
            .is_none_or(|max| limits::acquire(&key, max))
    }
}
