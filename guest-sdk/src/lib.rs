//! Write limen routing policies in Rust.
//!
//! A policy is a type that implements [`Policy`]: built once per instance
//! from its JSON config by [`Policy::init`], then asked for a [`Decision`] for
//! every connection by [`Policy::route`]. [`export_policy!`] turns it into the
//! component exports limen calls.
//!
//! ```ignore
//! use limen_guest::{export_policy, ClientHello, Connection, Decision, Policy, Alert};
//!
//! struct OnlyExample;
//!
//! impl Policy for OnlyExample {
//!     fn init(_config: &str) -> Result<Self, String> {
//!         Ok(OnlyExample)
//!     }
//!     fn route(&self, _conn: &Connection, hello: Option<&ClientHello>) -> Decision {
//!         match hello.and_then(|h| h.sni()).as_deref() {
//!             Some("example.test") => Decision::passthrough("127.0.0.1:9451"),
//!             _ => Decision::Reject(Alert::UnrecognizedName),
//!         }
//!     }
//! }
//!
//! export_policy!(OnlyExample);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2` (limen's `cargo xtask guests`
//! does it for the examples). The WIT in `wit/` is the contract.
#![warn(missing_docs)]

mod decision;
pub mod limits;
pub mod log;
mod matcher;

pub use bindings::limen::router::host::RuleKind;
pub use decision::{TerminateExt, UpstreamExt};
pub use matcher::{HostPattern, PatternError};

/// Generated bindings for the `limen:router/policy` world.
///
/// Public so [`export_policy!`] can reach it from the policy's crate; use the
/// re-exports at the crate root instead of naming these paths.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "limen:router/policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "limen_guest::bindings",
    });
}

pub use bindings::limen::router::types::{
    Alert, ClientHello, Connection, Decision, IpAddress, ProxyProtocol, ProxyTlvs, SocketAddress,
    Terminate, Transport, Upstream, UpstreamTls,
};

/// A routing policy.
///
/// One value lives per Wasm instance; limen reuses instances across
/// connections, so build everything expensive (tables, regexes) in `init` and
/// keep `route` allocation-light.
pub trait Policy: Sized + Send + Sync + 'static {
    /// Build the policy from the `[policy.config]` table of limen's config,
    /// passed as JSON. An `Err` refuses the module with that message.
    fn init(config: &str) -> Result<Self, String>;

    /// Decide one connection. `hello` is `None` when the client's first bytes
    /// were not a TLS handshake. Its getters (`sni()`, `alpn()`, `ja4()`,
    /// `transport()` for [`Transport::Tcp`] or [`Transport::Quic`]...)
    /// each ask limen for one field: read what the decision needs, once
    /// (the fingerprints are computed only if a policy asks for one).
    fn route(&self, conn: &Connection, hello: Option<&ClientHello>) -> Decision;
}

/// Tell limen which kind of rule decided the connection being routed.
///
/// Optional, and cheap (one host call): limen labels
/// `limen_tls_sni_route_total{result}` with it (`exact`, `wildcard`, `regex`,
/// `fallback`; `unreported` for policies that never call this), and counts a
/// reject reported as [`RuleKind::NoMatch`] in
/// `limen_tls_sni_listener_miss_total`. The last call in a `route` counts.
pub fn report_rule(kind: RuleKind) {
    bindings::limen::router::host::report_rule(kind);
}

/// Tell limen, from `init`, how many routing rules this policy holds (a
/// table's entries, a rule list's length): exported as
/// `limen_tls_sni_routes_active` and shown on the status page. Optional.
pub fn report_routes(count: usize) {
    bindings::limen::router::host::report_routes(u32::try_from(count).unwrap_or(u32::MAX));
}

/// Parse a policy's JSON config into a serde type, with a readable error.
pub fn config_from_json<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    serde_json::from_str(config).map_err(|e| format!("invalid policy config: {e}"))
}

impl Transport {
    /// Parse `"tcp"` or `"quic"` (any case), as policy configs write them.
    pub fn from_name(name: &str) -> Option<Transport> {
        match name.to_ascii_lowercase().as_str() {
            "tcp" => Some(Transport::Tcp),
            "quic" => Some(Transport::Quic),
            _ => None,
        }
    }

    /// `"tcp"` or `"quic"`: the name limen's logs and `from_name` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
        }
    }
}

impl IpAddress {
    /// The address as a std type.
    pub fn to_std(&self) -> std::net::IpAddr {
        match *self {
            IpAddress::V4((a, b, c, d)) => std::net::Ipv4Addr::new(a, b, c, d).into(),
            IpAddress::V6((a, b, c, d, e, f, g, h)) => {
                std::net::Ipv6Addr::new(a, b, c, d, e, f, g, h).into()
            }
        }
    }
}

/// Exports a [`Policy`] type as the component's `init` and `route`.
///
/// Invoke it once, at the crate root of a `cdylib` policy crate.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        static __LIMEN_POLICY: ::std::sync::OnceLock<$policy> = ::std::sync::OnceLock::new();

        struct __LimenExports;

        impl $crate::bindings::Guest for __LimenExports {
            fn init(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                let policy = <$policy as $crate::Policy>::init(&config)?;
                __LIMEN_POLICY
                    .set(policy)
                    .map_err(|_| ::std::string::String::from("init called twice"))
            }

            fn route(
                conn: $crate::Connection,
                hello: ::core::option::Option<&$crate::ClientHello>,
            ) -> $crate::Decision {
                match __LIMEN_POLICY.get() {
                    Some(policy) => $crate::Policy::route(policy, &conn, hello),
                    // limen always calls init first; refuse rather than guess.
                    None => $crate::Decision::Reject($crate::Alert::InternalError),
                }
            }
        }

        $crate::bindings::__export_policy_world!(__LimenExports with_types_in $crate::bindings);
    };
}
