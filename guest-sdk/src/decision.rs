//! Constructors that keep policies short.

use crate::{Alert, Decision, ProxyProtocol, Upstream};

impl Decision {
    /// Pass the connection through to `address` (`host:port`) untouched.
    pub fn passthrough(address: impl Into<String>) -> Decision {
        Decision::Passthrough(Upstream::to(address))
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
    /// Send a PROXY protocol header of this version first.
    fn with_proxy_protocol(self, version: ProxyProtocol) -> Self;
    /// Override limen's connect timeout.
    fn with_connect_timeout_ms(self, ms: u32) -> Self;
}

impl UpstreamExt for Upstream {
    fn to(address: impl Into<String>) -> Upstream {
        Upstream {
            address: address.into(),
            proxy_protocol: None,
            connect_timeout_ms: None,
        }
    }

    fn with_proxy_protocol(mut self, version: ProxyProtocol) -> Upstream {
        self.proxy_protocol = Some(version);
        self
    }

    fn with_connect_timeout_ms(mut self, ms: u32) -> Upstream {
        self.connect_timeout_ms = Some(ms);
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
