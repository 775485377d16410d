//! What a policy can decide, in host types.
//!
//! The WIT's `decision` is converted into these by `policy::convert`; the rest
//! of limen never sees generated bindings. An [`UpstreamAddr`] is parsed (not
//! yet resolved or allowed): that happens in `upstream`, because names resolve
//! asynchronously.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{DnsName, ServerName};

/// A policy's verdict on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Replay the peeked bytes to the upstream, then copy both ways.
    Passthrough(Upstream),
    /// Finish the handshake in limen (not executed yet: see `action`).
    Terminate(Terminate),
    /// Send the alert (if any) and close.
    Reject(Alert),
}

/// An upstream as the policy named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Where to connect.
    pub addr: UpstreamAddr,
    /// PROXY protocol header to send first.
    pub proxy_protocol: Option<ProxyVersion>,
    /// Connect timeout overriding limen's default.
    pub connect_timeout: Option<Duration>,
    /// TLVs to add to a v2 PROXY header.
    pub proxy_tlvs: ProxyTlvs,
}

/// limen's PROXY v2 TLV type for the JA4 fingerprint (ASCII), in the range
/// the PROXY protocol leaves to applications (0xE0-0xEF).
pub const PP2_TYPE_LIMEN_JA4: u8 = 0xE0;

/// TLVs a v2 PROXY header carries (nothing, by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyTlvs {
    /// PP2_TYPE_AUTHORITY: the SNI.
    pub authority: bool,
    /// PP2_TYPE_ALPN: the negotiated (terminate) or first offered (passthrough) protocol.
    pub alpn: bool,
    /// limen's 0xE0: the JA4 fingerprint.
    pub ja4: bool,
}

/// A parsed `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpstreamAddr {
    /// An IP literal.
    Ip(SocketAddr),
    /// A DNS name (lower-case) and port, resolved at connect time.
    Name(DnsName<'static>, u16),
    /// A `[upstreams.pools]` entry, by name: limen picks the member.
    Pool(Arc<str>),
}

/// Whether `name` may name a pool: 1-64 of `[A-Za-z0-9_-]`. No dots and no
/// colon, so a pool name never reads as `host:port` or a bare host name.
pub fn is_pool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why an upstream address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream `{0}` is not `host:port`, `[v6]:port` or a pool name")]
pub struct BadAddress(pub String);

impl UpstreamAddr {
    /// Parse `host:port`, `ip:port`, `[v6]:port` or a pool's name.
    pub fn parse(text: &str) -> Result<UpstreamAddr, BadAddress> {
        let bad = || BadAddress(text.to_owned());
        if is_pool_name(text) {
            return Ok(UpstreamAddr::Pool(text.into()));
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return if addr.port() == 0 {
                Err(bad())
            } else {
                Ok(UpstreamAddr::Ip(addr))
            };
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 || host.contains(':') || host.starts_with('[') {
            return Err(bad());
        }
        let name = crate::hello::normalise_name(host.as_bytes()).ok_or_else(bad)?;
        Ok(UpstreamAddr::Name(name, port))
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAddr::Ip(addr) => addr.fmt(f),
            UpstreamAddr::Name(name, port) => write!(f, "{}:{port}", name.as_ref()),
            UpstreamAddr::Pool(name) => f.write_str(name),
        }
    }
}

/// PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// Finish the client's handshake in limen, then forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminate {
    /// Name of a `[certificates.NAME]` entry.
    pub certificate: String,
    /// Where the decrypted bytes go.
    pub upstream: Upstream,
    /// Speak TLS to the upstream too; plaintext when `None`.
    pub reencrypt: Option<Reencrypt>,
    /// ALPN protocols limen may select with the client, in preference order;
    /// empty: no ALPN.
    pub alpn: Vec<Vec<u8>>,
}

/// TLS towards the upstream of a terminated connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reencrypt {
    /// The name to send and verify; the upstream's host (name or IP) when `None`.
    pub server_name: Option<ServerName<'static>>,
}

/// How a rejected connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// Close without an alert.
    Close,
    /// unrecognized_name (112).
    UnrecognizedName,
    /// handshake_failure (40).
    HandshakeFailure,
    /// access_denied (49).
    AccessDenied,
    /// internal_error (80).
    InternalError,
    /// protocol_version (70).
    ProtocolVersion,
    /// insufficient_security (71).
    InsufficientSecurity,
    /// no_application_protocol (120): the client's ALPN list and the one a
    /// `terminate` decision allows have nothing in common (RFC 7301). Sent by
    /// limen itself; not a policy's choice.
    NoApplicationProtocol,
}

impl Alert {
    /// The TLS AlertDescription code, or `None` for a bare close.
    pub fn code(self) -> Option<u8> {
        Some(match self {
            Alert::Close => return None,
            Alert::UnrecognizedName => 112,
            Alert::HandshakeFailure => 40,
            Alert::AccessDenied => 49,
            Alert::InternalError => 80,
            Alert::ProtocolVersion => 70,
            Alert::InsufficientSecurity => 71,
            Alert::NoApplicationProtocol => 120,
        })
    }

    /// The snake_case name used in config files, logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Alert::Close => "close",
            Alert::UnrecognizedName => "unrecognized_name",
            Alert::HandshakeFailure => "handshake_failure",
            Alert::AccessDenied => "access_denied",
            Alert::InternalError => "internal_error",
            Alert::ProtocolVersion => "protocol_version",
            Alert::InsufficientSecurity => "insufficient_security",
            Alert::NoApplicationProtocol => "no_application_protocol",
        }
    }

    /// Parse a [`name`](Self::name); `-` is accepted for `_`, as the guest
    /// SDK accepts it.
    pub fn from_name(name: &str) -> Option<Alert> {
        let name = name.replace('-', "_");
        [
            Alert::Close,
            Alert::UnrecognizedName,
            Alert::HandshakeFailure,
            Alert::AccessDenied,
            Alert::InternalError,
            Alert::ProtocolVersion,
            Alert::InsufficientSecurity,
            Alert::NoApplicationProtocol,
        ]
        .into_iter()
        .find(|alert| alert.name() == name.as_str())
    }
}

/// Which kind of rule the policy says decided a connection (its optional
/// `report-rule` call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A rule naming the SNI exactly.
    Exact,
    /// A wildcard or suffix rule.
    Wildcard,
    /// A regular-expression rule.
    Regex,
    /// The policy's default route.
    Fallback,
    /// No rule matched, no default.
    NoMatch,
}

impl Rule {
    /// Every kind, in WIT order.
    pub const ALL: [Rule; 5] = [
        Rule::Exact,
        Rule::Wildcard,
        Rule::Regex,
        Rule::Fallback,
        Rule::NoMatch,
    ];

    /// The WIT name: `exact`, `wildcard`, `regex`, `fallback`, `no-match`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Exact => "exact",
            Rule::Wildcard => "wildcard",
            Rule::Regex => "regex",
            Rule::Fallback => "fallback",
            Rule::NoMatch => "no-match",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Passthrough(up) => write!(f, "passthrough:{}", up.addr),
            Decision::Terminate(t) => write!(f, "terminate:{}:{}", t.certificate, t.upstream.addr),
            Decision::Reject(alert) => write!(f, "reject:{}", alert.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UpstreamAddr;

    #[test]
    fn parses_upstream_forms() {
        assert!(matches!(
            UpstreamAddr::parse("127.0.0.1:9451"),
            Ok(UpstreamAddr::Ip(_))
        ));
        assert!(matches!(
            UpstreamAddr::parse("[::1]:443"),
            Ok(UpstreamAddr::Ip(_))
        ));
        assert_eq!(
            UpstreamAddr::parse("web-2_a"),
            Ok(UpstreamAddr::Pool("web-2_a".into()))
        );
        let name = UpstreamAddr::parse("Svc.NS.svc.cluster.local.:443").unwrap();
        assert_eq!(name.to_string(), "svc.ns.svc.cluster.local:443");
        for bad in [
            "",
            "a.test",
            "a.test:0",
            "a.test:x",
            "::1:443",
            "a b:1",
            "a.test:70000",
            "a b",
            "é",
            &"p".repeat(65),
        ] {
            assert!(UpstreamAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
