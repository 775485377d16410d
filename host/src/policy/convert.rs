//! Host types to WIT types and back. The only place generated types meet
//! limen's own.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Connection;
use super::bindings::{wit, wit_host};
use rustls_pki_types::ServerName;

use crate::decision::{
    Alert, Decision, ProxyTlvs, ProxyVersion, Reencrypt, Rule, Terminate, Upstream, UpstreamAddr,
};

pub(crate) fn connection(conn: &Connection) -> wit::Connection {
    wit::Connection {
        client: socket_address(conn.client),
        local: socket_address(conn.local),
        listener: conn.listener.to_string(),
    }
}

fn socket_address(addr: SocketAddr) -> wit::SocketAddress {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            wit::IpAddress::V4((a, b, c, d))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            wit::IpAddress::V6((a, b, c, d, e, f, g, h))
        }
    };
    wit::SocketAddress {
        ip,
        port: addr.port(),
    }
}

/// The rule kind a guest reported.
pub(crate) fn rule(kind: wit_host::RuleKind) -> Rule {
    match kind {
        wit_host::RuleKind::Exact => Rule::Exact,
        wit_host::RuleKind::Wildcard => Rule::Wildcard,
        wit_host::RuleKind::Regex => Rule::Regex,
        wit_host::RuleKind::Fallback => Rule::Fallback,
        wit_host::RuleKind::NoMatch => Rule::NoMatch,
    }
}

/// A decision the host can act on, or why not.
pub(crate) fn decision(decision: wit::Decision) -> Result<Decision, String> {
    Ok(match decision {
        wit::Decision::Passthrough(up) => Decision::Passthrough(upstream(up)?),
        wit::Decision::Terminate(t) => Decision::Terminate(Terminate {
            certificate: t.certificate,
            upstream: upstream(t.upstream)?,
            reencrypt: t.upstream_tls.map(reencrypt).transpose()?,
            alpn: alpn(t.alpn)?,
        }),
        wit::Decision::Reject(alert) => Decision::Reject(self::alert(alert)),
    })
}

fn upstream(up: wit::Upstream) -> Result<Upstream, String> {
    Ok(Upstream {
        addr: UpstreamAddr::parse(&up.address).map_err(|e| e.to_string())?,
        proxy_protocol: up.proxy_protocol.map(|p| match p {
            wit::ProxyProtocol::V1 => ProxyVersion::V1,
            wit::ProxyProtocol::V2 => ProxyVersion::V2,
        }),
        connect_timeout: match up.connect_timeout_ms {
            Some(0) => return Err("connect-timeout-ms must be > 0".into()),
            ms => ms.map(|ms| Duration::from_millis(ms.into())),
        },
        proxy_tlvs: ProxyTlvs {
            authority: up.proxy_tlvs.contains(wit::ProxyTlvs::AUTHORITY),
            alpn: up.proxy_tlvs.contains(wit::ProxyTlvs::ALPN),
            ja4: up.proxy_tlvs.contains(wit::ProxyTlvs::JA4),
        },
    })
}

fn reencrypt(tls: wit::UpstreamTls) -> Result<Reencrypt, String> {
    let server_name =
        match tls.server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                format!("upstream-tls server-name `{name}` is not a DNS name or IP")
            })?),
        };
    Ok(Reencrypt { server_name })
}

/// RFC 7301: 1 to 255 bytes each; a list that rustls will accept.
fn alpn(protocols: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, String> {
    if protocols.len() > 32 || protocols.iter().any(|p| p.is_empty() || p.len() > 255) {
        return Err("terminate alpn: at most 32 protocols of 1 to 255 bytes".into());
    }
    Ok(protocols)
}

fn alert(alert: wit::Alert) -> Alert {
    match alert {
        wit::Alert::Close => Alert::Close,
        wit::Alert::UnrecognizedName => Alert::UnrecognizedName,
        wit::Alert::HandshakeFailure => Alert::HandshakeFailure,
        wit::Alert::AccessDenied => Alert::AccessDenied,
        wit::Alert::InternalError => Alert::InternalError,
        wit::Alert::ProtocolVersion => Alert::ProtocolVersion,
        wit::Alert::InsufficientSecurity => Alert::InsufficientSecurity,
    }
}
