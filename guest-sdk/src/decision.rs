//! Constructors that keep policies short.

use crate::{Alert, Decision, ProxyProtocol, ProxyTlvs, Terminate, Upstream, UpstreamTls};

impl Decision {
    /// Pass the connection through to `address` (`host:port`) untouched.
    pub fn passthrough(address: impl Into<String>) -> Decision {
        Decision::Passthrough(Upstream::to(address))
    }

    /// Finish the handshake in limen with the certificate named `certificate`
    /// in limen's config, then forward the plaintext to `upstream`
    /// (`host:port`). Build a [`Terminate`] with [`TerminateExt`] to
    /// re-encrypt or offer ALPN.
    pub fn terminate(certificate: impl Into<String>, upstream: impl Into<String>) -> Decision {
        Decision::Terminate(Terminate::to(certificate, Upstream::to(upstream)))
    }

    /// Pass the connection through to a member of the pool named `pool` in
    /// limen's `[upstreams.pools]`: limen picks the member by the pool's
    /// balance, skips members that are down, and retries another on a
    /// refused connect.
    pub fn pool(pool: impl Into<String>) -> Decision {
        Decision::Passthrough(Upstream::pool(pool))
    }

    /// Reject with a fatal alert and close.
    pub fn reject(alert: Alert) -> Decision {
        Decision::Reject(alert)
    }
}

/// Builder-style helpers on [`Upstream`].
pub trait UpstreamExt {
    /// An upstream at `address` with limen's defaults (no PROXY header,
    /// limen's connect timeout).
    fn to(address: impl Into<String>) -> Self;
    /// The pool named `name` in limen's `[upstreams.pools]` (an upstream's
    /// address may be a pool's name: 1-64 of `A-Za-z0-9_-`, no dots).
    fn pool(name: impl Into<String>) -> Self;
    /// Send a PROXY protocol header of this version first.
    fn with_proxy_protocol(self, version: ProxyProtocol) -> Self;
    /// Override limen's connect timeout.
    fn with_connect_timeout_ms(self, ms: u32) -> Self;
    /// Add these TLVs to a v2 PROXY header (SNI as AUTHORITY, ALPN, JA4).
    fn with_proxy_tlvs(self, tlvs: ProxyTlvs) -> Self;
}

impl UpstreamExt for Upstream {
    fn to(address: impl Into<String>) -> Upstream {
        Upstream {
            address: address.into(),
            proxy_protocol: None,
            connect_timeout_ms: None,
            proxy_tlvs: ProxyTlvs::empty(),
        }
    }

    fn pool(name: impl Into<String>) -> Upstream {
        Upstream::to(name)
    }

    fn with_proxy_protocol(mut self, version: ProxyProtocol) -> Upstream {
        self.proxy_protocol = Some(version);
        self
    }

    fn with_connect_timeout_ms(mut self, ms: u32) -> Upstream {
        self.connect_timeout_ms = Some(ms);
        self
    }

    fn with_proxy_tlvs(mut self, tlvs: ProxyTlvs) -> Upstream {
        self.proxy_tlvs = tlvs;
        self
    }
}

/// Builder-style helpers on [`Terminate`].
pub trait TerminateExt {
    /// Terminate with `certificate`, forwarding plaintext to `upstream`.
    fn to(certificate: impl Into<String>, upstream: Upstream) -> Self;
    /// Speak TLS to the upstream too, sending and verifying `server_name`
    /// (the upstream's host when `None`).
    fn reencrypt(self, server_name: Option<String>) -> Self;
    /// ALPN protocols limen may select with the client, in preference order.
    fn with_alpn<P: AsRef<[u8]>>(self, protocols: &[P]) -> Self;
}

impl TerminateExt for Terminate {
    fn to(certificate: impl Into<String>, upstream: Upstream) -> Terminate {
        Terminate {
            certificate: certificate.into(),
            upstream,
            upstream_tls: None,
            alpn: Vec::new(),
        }
    }

    fn reencrypt(mut self, server_name: Option<String>) -> Terminate {
        self.upstream_tls = Some(UpstreamTls { server_name });
        self
    }

    fn with_alpn<P: AsRef<[u8]>>(mut self, protocols: &[P]) -> Terminate {
        self.alpn = protocols.iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }
}

impl Alert {
    /// Parse the snake_case TLS name of an alert (`"access_denied"`), as
    /// policy configs write them; `-` is accepted for `_`.
    pub fn from_name(name: &str) -> Option<Alert> {
        Some(match name.replace('-', "_").as_str() {
            "close" => Alert::Close,
            "unrecognized_name" => Alert::UnrecognizedName,
            "handshake_failure" => Alert::HandshakeFailure,
            "access_denied" => Alert::AccessDenied,
            "internal_error" => Alert::InternalError,
            "protocol_version" => Alert::ProtocolVersion,
            "insufficient_security" => Alert::InsufficientSecurity,
            _ => return None,
        })
    }
}
