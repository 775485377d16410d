//! The upstream allow-list: which addresses a policy may send traffic to.
//!
//! A buggy or hostile policy must not turn limen into an open proxy, so every
//! upstream a policy names is checked here before limen connects.
//!
//! Rule syntax, each with an optional port or port range (absent: any port):
//! - `127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8` (IPv6 with a port needs
//!   brackets: `[fd00::]/8:443`, `[::1]:443`);
//! - `backend.internal:8443`: exactly that name;
//! - `.svc.cluster.local:443`: any name under that suffix (at any depth).
//!
//! A name is allowed by a name rule before resolution; otherwise it is
//! resolved and only the addresses an IP rule allows are used.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// A parsed allow-list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList {
    rules: Vec<AllowRule>,
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowRule {
    target: Target,
    ports: RangeInclusive<u16>,
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Net(IpNet),
    Name(String),
    /// Stored with its leading dot.
    Suffix(String),
}

impl AllowList {
    /// Build from parsed rules.
    pub fn new(rules: Vec<AllowRule>) -> AllowList {
        AllowList { rules }
    }

    /// Does a rule allow this socket address?
    pub fn allows_addr(&self, addr: SocketAddr) -> bool {
        self.rules.iter().any(|rule| {
            rule.ports.contains(&addr.port())
                // IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
                && matches!(&rule.target, Target::Net(net) if net.contains(&addr.ip().to_canonical()))
        })
    }

    /// Does a name rule allow this (lower-case) name and port?
    pub fn allows_name(&self, name: &str, port: u16) -> bool {
        self.rules.iter().any(|rule| {
            rule.ports.contains(&port)
                && match &rule.target {
                    Target::Name(exact) => exact == name,
                    Target::Suffix(suffix) => name.ends_with(suffix.as_str()),
                    Target::Net(_) => false,
                }
        })
    }

    /// Is there any address (CIDR) rule? Without one, a name that no name
    /// rule allows is refused before any DNS query is made for it.
    pub fn has_ip_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|rule| matches!(rule.target, Target::Net(_)))
    }

    /// No rule at all: nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl<'de> Deserialize<'de> for AllowRule {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<AllowRule, D::Error> {
        let text = String::deserialize(de)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for AllowRule {
    type Err = String;

    fn from_str(text: &str) -> Result<AllowRule, String> {
        let bad = |why: &str| format!("allow rule `{text}`: {why}");
        let (host, port) = split_port(text);
        let ports = match port {
            None => 0..=u16::MAX,
            Some(p) => parse_ports(p).ok_or_else(|| bad("bad port or port range"))?,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.replace("]/", "/");
        let target = if let Ok(net) = host.parse::<IpNet>() {
            Target::Net(net)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Target::Net(IpNet::from(ip))
        } else if host.starts_with('*') {
            return Err(bad(
                "write a suffix as `.example.com` (any depth), not `*.`",
            ));
        } else {
            let (suffix, bare) = match host.strip_prefix('.') {
                Some(bare) => (true, bare),
                None => (false, host.as_str()),
            };
            let Some(name) = crate::hello::normalise_name(bare.as_bytes()) else {
                return Err(bad("not an IP, CIDR, host name or `.suffix`"));
            };
            let name: &str = name.as_ref();
            if suffix {
                Target::Suffix(format!(".{name}"))
            } else {
                Target::Name(name.to_owned())
            }
        };
        Ok(AllowRule { target, ports })
    }
}

/// Split off `:port` where it cannot be part of a bare IPv6 address:
/// `[v6]:port`, `[v6]/len:port`, `v4:port`, `v4/len:port`, `name:port`.
fn split_port(text: &str) -> (&str, Option<&str>) {
    if text.starts_with('[') {
        let Some(close) = text.find(']') else {
            return (text, None);
        };
        return match text[close..].rsplit_once(':') {
            Some((_, port)) => (&text[..text.len() - port.len() - 1], Some(port)),
            None => (text, None),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (text, None),
    }
}

fn parse_ports(text: &str) -> Option<RangeInclusive<u16>> {
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let (lo, hi) = (lo.parse::<u16>().ok()?, hi.parse::<u16>().ok()?);
    (lo > 0 && lo <= hi).then_some(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str]) -> AllowList {
        AllowList::new(rules.iter().map(|r| r.parse().unwrap()).collect())
    }

    #[test]
    fn ip_rules_with_and_without_ports() {
        let allow = list(&[
            "127.0.0.1/32",
            "10.0.0.0/8:443",
            "[::1]:8443-8444",
            "fd00::/8",
        ]);
        assert!(allow.allows_addr("127.0.0.1:1".parse().unwrap()));
        assert!(allow.allows_addr("[::ffff:127.0.0.1]:9".parse().unwrap()));
        assert!(!allow.allows_addr("127.0.0.2:1".parse().unwrap()));
        assert!(allow.allows_addr("10.9.8.7:443".parse().unwrap()));
        assert!(!allow.allows_addr("10.9.8.7:444".parse().unwrap()));
        assert!(allow.allows_addr("[::1]:8444".parse().unwrap()));
        assert!(!allow.allows_addr("[::1]:8445".parse().unwrap()));
        assert!(allow.allows_addr("[fd12::1]:1".parse().unwrap()));
    }

    #[test]
    fn name_rules() {
        let allow = list(&["backend.internal:8443", ".svc.cluster.local:443"]);
        assert!(allow.allows_name("backend.internal", 8443));
        assert!(!allow.allows_name("backend.internal", 8444));
        assert!(!allow.allows_name("x.backend.internal", 8443));
        assert!(allow.allows_name("a.b.svc.cluster.local", 443));
        assert!(!allow.allows_name("svc.cluster.local", 443));
        assert!(!allow.allows_name("evilsvc.cluster.local", 443));
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "",
            "*.x.test",
            "1.2.3.4:0",
            "1.2.3.4:9-1",
            "a b",
            "10.0.0.0/33",
        ] {
            assert!(bad.parse::<AllowRule>().is_err(), "{bad}");
        }
    }
}
