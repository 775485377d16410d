//! From a decision to what limen will do, or a refusal: the one place the
//! rules limen applies to a policy's decision live. Pure: connections,
//! `limen explain`, `limen test` and `[[policy.expect]]` call the same
//! [`plan`], so explain never promises what production refuses.
//!
//! Names are the one thing checked in two steps: here, whether the
//! allow-list could ever admit the name (so a policy cannot make limen query
//! DNS for names it may not use); after resolution (`upstream::resolve`,
//! live only), which of its addresses [`admits`] keeps.

mod allow;

pub use allow::{AllowList, AllowRule};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::decision::{Alert, Decision, Terminate, Upstream, UpstreamAddr};
use crate::hello::{HelloSummary, Transport};
use crate::outcome::PolicyFailure;

/// The rules limen applies to a decision, as far as they can be known
/// without binding a socket or reading a key: the allow-list, the
/// configured listener addresses, the certificate names. The self-test and
/// `limen explain` plan decisions against them, as a live limen does
/// against the generation it built from the same config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfflineRules {
    /// `[upstreams] allow`.
    pub allow: AllowList,
    /// Every listener's `bind` (a port 0 bind matches no upstream).
    pub own: Vec<SocketAddr>,
    /// The `[certificates]` names.
    pub certificates: Vec<Arc<str>>,
    /// The `[upstreams.pools]` names.
    pub pools: Vec<Arc<str>>,
}

/// A decision limen will carry out. `C` is what a certificate name resolves
/// to: a rustls `ServerConfig` live, nothing offline.
#[derive(Debug)]
pub(crate) enum Plan<C> {
    /// Replay the peeked bytes to this upstream, then pipe.
    Passthrough(Upstream),
    /// Finish the handshake with `config`; the hello it answers comes along,
    /// so a terminate without one cannot be built.
    Terminate {
        terminate: Terminate,
        config: C,
        hello: Arc<HelloSummary>,
    },
    /// Send the alert (or just close).
    Reject(Alert),
}

/// A decision limen will not carry out: the policy's failure, so the fail
/// mode applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The allow-list does not admit the upstream (for a name: no rule
    /// admits the name and no address rule could admit what it resolves to;
    /// live, also: none of its addresses is admitted).
    #[error("P014 policy decision refused: upstream {0} is not in the allow-list")]
    NotAllowed(String),
    /// The upstream is one of limen's own listeners (it would loop).
    #[error("P014 policy decision refused: upstream {0} is one of limen's own listeners")]
    OwnListener(SocketAddr),
    /// `terminate` for a connection that sent no ClientHello.
    #[error("P014 policy decision refused: terminate needs a TLS ClientHello")]
    NoHello,
    /// `terminate` for a QUIC client: limen has no QUIC stack to finish the
    /// handshake with (passthrough and reject work).
    #[error(
        "P014 policy decision refused: terminate is not available for QUIC (pass it through or reject it)"
    )]
    TerminateQuic,
    /// `terminate` naming a certificate limen does not have.
    #[error("P014 policy decision refused: no certificate named `{0}` in [certificates]")]
    UnknownCertificate(String),
    /// `terminate` naming an ACME certificate not issued yet.
    #[error(
        "P014 policy decision refused: certificate `{0}` has not been issued yet (ACME order pending)"
    )]
    NotIssued(String),
    /// A pool limen does not have.
    #[error("P014 policy decision refused: no pool named `{0}` in [upstreams.pools]")]
    UnknownPool(Arc<str>),
}

impl Refusal {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        "P014"
    }

    /// How it counts in `limen_policy_failures_total`.
    pub fn kind(&self) -> PolicyFailure {
        PolicyFailure::InvalidDecision
    }
}

/// Where a `terminate` decision's certificate comes from.
pub(crate) trait Certificates {
    /// What a name resolves to.
    type Config;
    /// The certificate `name` serving `alpn`, or why limen cannot serve it.
    fn lookup(&self, name: &str, alpn: &[Vec<u8>]) -> Result<Self::Config, Refusal>;
}

/// Offline: the configured names, without reading a key (an ACME name
/// counts as there: whether it is issued yet is a matter of time).
impl Certificates for [Arc<str>] {
    type Config = ();
    fn lookup(&self, name: &str, _: &[Vec<u8>]) -> Result<(), Refusal> {
        self.iter()
            .any(|c| **c == *name)
            .then_some(())
            .ok_or_else(|| Refusal::UnknownCertificate(name.to_owned()))
    }
}

/// What a decision is checked against.
pub(crate) struct Rules<'a, C: ?Sized> {
    pub(crate) allow: &'a AllowList,
    /// Where limen listens.
    pub(crate) own: &'a [SocketAddr],
    pub(crate) certificates: &'a C,
    /// The pools' names.
    pub(crate) pools: &'a [Arc<str>],
}

/// The rules a config states, for planning without a live generation.
pub(crate) fn offline(rules: &OfflineRules) -> Rules<'_, [Arc<str>]> {
    Rules {
        allow: &rules.allow,
        own: &rules.own,
        certificates: &rules.certificates,
        pools: &rules.pools,
    }
}

/// What limen will do with `decision` for a connection that sent `hello`
/// (`None`: not TLS), or why it will not.
pub(crate) fn plan<C: Certificates + ?Sized>(
    rules: &Rules<'_, C>,
    decision: Decision,
    hello: Option<&Arc<HelloSummary>>,
) -> Result<Plan<C::Config>, Refusal> {
    match decision {
        Decision::Reject(alert) => Ok(Plan::Reject(alert)),
        Decision::Passthrough(upstream) => {
            check_upstream(rules, &upstream.addr)?;
            Ok(Plan::Passthrough(upstream))
        }
        Decision::Terminate(terminate) => {
            let hello = hello.ok_or(Refusal::NoHello)?.clone();
            if hello.transport() == Transport::Quic {
                return Err(Refusal::TerminateQuic);
            }
            let config = rules
                .certificates
                .lookup(&terminate.certificate, &terminate.alpn)?;
            check_upstream(rules, &terminate.upstream.addr)?;
            Ok(Plan::Terminate {
                terminate,
                config,
                hello,
            })
        }
    }
}

/// An upstream the policy named: an address must be admitted; a name must
/// be one the allow-list could admit once resolved; a pool must exist (its
/// members are the operator's, so the allow-list does not apply to them).
fn check_upstream<C: ?Sized>(rules: &Rules<'_, C>, addr: &UpstreamAddr) -> Result<(), Refusal> {
    match addr {
        UpstreamAddr::Ip(ip) if is_own(rules.own, *ip) => Err(Refusal::OwnListener(*ip)),
        UpstreamAddr::Ip(ip) if !rules.allow.allows_addr(*ip) => {
            Err(Refusal::NotAllowed(addr.to_string()))
        }
        UpstreamAddr::Name(name, port)
            if !rules.allow.allows_name(name.as_ref(), *port) && !rules.allow.has_ip_rules() =>
        {
            Err(Refusal::NotAllowed(addr.to_string()))
        }
        UpstreamAddr::Pool(name) if !rules.pools.contains(name) => {
            Err(Refusal::UnknownPool(name.clone()))
        }
        _ => Ok(()),
    }
}

/// Whether limen may connect to `addr`, which a name resolved to. A name
/// rule (`by_name`) trusts DNS, but not to point at this host's own loopback
/// or link-local services: those need an address rule.
pub(crate) fn admits(rules: &Rules<'_, impl ?Sized>, addr: SocketAddr, by_name: bool) -> bool {
    // Canonical, so `::ffff:127.0.0.1` is loopback too.
    let ip = addr.ip().to_canonical();
    let local = ip.is_loopback() || is_link_local(ip);
    !is_own(rules.own, addr) && ((by_name && !local) || rules.allow.allows_addr(addr))
}

/// Where limen itself listens: an upstream there would loop connections
/// back into limen until every permit is taken. An unspecified address
/// (`0.0.0.0`) reaches every local listener.
pub(crate) fn is_own(own: &[SocketAddr], addr: SocketAddr) -> bool {
    // Canonical, so `::ffff:0.0.0.0` is unspecified too.
    let ip = addr.ip().to_canonical();
    ip.is_unspecified()
        || own.iter().any(|l| {
            let bound = l.ip().to_canonical();
            l.port() == addr.port() && (bound.is_unspecified() || bound == ip)
        })
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::AllowRule;

    fn passthrough(addr: &str) -> Decision {
        Decision::Passthrough(Upstream {
            addr: UpstreamAddr::parse(addr).unwrap(),
            proxy_protocol: None,
            connect_timeout: None,
            proxy_tlvs: Default::default(),
        })
    }

    #[test]
    fn own_listeners_and_unlisted_addresses_are_refused() {
        let allow = AllowList::new(vec!["127.0.0.0/8".parse::<AllowRule>().unwrap()]);
        let own = ["127.0.0.1:8443".parse().unwrap()];
        let certificates: &[Arc<str>] = &[];
        let rules = Rules {
            allow: &allow,
            own: &own,
            certificates,
            pools: &["web".into()],
        };
        let refused = |d| plan(&rules, d, None).err();
        assert_eq!(
            refused(passthrough("127.0.0.1:8443")),
            Some(Refusal::OwnListener("127.0.0.1:8443".parse().unwrap()))
        );
        assert_eq!(
            refused(passthrough("10.0.0.1:443")),
            Some(Refusal::NotAllowed("10.0.0.1:443".into()))
        );
        assert_eq!(refused(passthrough("127.0.0.1:9000")), None);
        assert_eq!(refused(passthrough("web")), None);
        assert_eq!(
            refused(passthrough("api")),
            Some(Refusal::UnknownPool("api".into()))
        );
        assert_eq!(
            refused(passthrough("0.0.0.0:9000")).map(|r| r.code()),
            Some("P014")
        );
    }

    #[test]
    fn mapped_addresses_are_judged_as_their_ipv4_selves() {
        let allow = AllowList::default();
        let own = ["127.0.0.1:8443".parse().unwrap()];
        let rules = Rules {
            allow: &allow,
            own: &own,
            certificates: &[] as &[Arc<str>],
            pools: &[],
        };
        let mapped = |text: &str| text.parse::<SocketAddr>().unwrap();
        // A name rule may not reach loopback through a mapped address...
        assert!(!admits(&rules, mapped("[::ffff:127.0.0.1]:9000"), true));
        assert!(admits(&rules, mapped("[::ffff:192.0.2.1]:9000"), true));
        // ...nor limen's own listener, nor every local one.
        assert!(is_own(&own, mapped("[::ffff:127.0.0.1]:8443")));
        assert!(is_own(&own, mapped("[::ffff:0.0.0.0]:9000")));
    }
}
