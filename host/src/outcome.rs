//! limen's outcome vocabularies: every bounded set of words a metric label,
//! an event field or the access log uses, each one enum. Nothing else in
//! limen writes these words: metrics index their pre-resolved series by the
//! enum, events and the access log print `as_str()`, and tests read `ALL`,
//! so a new word is added here once and reaches all of them.
//!
//! This module depends on nothing in limen, so every layer may use it.

/// Defines a fieldless enum with `ALL` (in label order), `COUNT`, `as_str()`
/// and `Display`, from `Variant = "word"` pairs.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in label order (`value as usize` is its index).
            pub const ALL: [$name; [$($word),+].len()] = [$($name::$variant),+];
            /// How many values there are.
            pub const COUNT: usize = Self::ALL.len();

            /// The word metrics, events and the access log use.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// How the policy's decision classifies a connection, for
    /// `limen_tls_sni_route_total{result}` and the access log's `result`.
    pub enum RouteResult {
        /// Routed by a rule naming the SNI exactly.
        Exact = "exact",
        /// Routed by a wildcard or suffix rule.
        Wildcard = "wildcard",
        /// Routed by a regex rule.
        Regex = "regex",
        /// Routed by the policy's default (no rule matched, or no SNI).
        Fallback = "fallback",
        /// Routed, and the policy did not say by which kind of rule.
        Unreported = "unreported",
        /// The policy rejected the connection.
        Reject = "reject",
        /// The policy failed (or its decision was refused): the fail mode applied.
        PolicyError = "policy_error",
        /// A TLS-ALPN-01 validation connection, answered by limen without
        /// asking the policy.
        AcmeChallenge = "acme_challenge",
    }
}

vocabulary! {
    /// What a connection is doing, for `limen_connections_active{action}`.
    pub enum Stage {
        /// Accepted, not yet decided (peeking, asking the policy, resolving).
        Pending = "pending",
        /// Replaying and piping to an upstream.
        Passthrough = "passthrough",
        /// Handshaking with limen's certificate, then piping.
        Terminate = "terminate",
        /// Sending an alert and closing.
        Reject = "reject",
    }
}

vocabulary! {
    /// Why no ClientHello reached the policy (or, for `not_tls`, why the
    /// policy decided without one), for
    /// `limen_tls_sni_listener_parse_failures_total{reason}`.
    pub enum ParseFailure {
        /// The whole hello did not arrive within `hello_timeout`.
        Timeout = "timeout",
        /// Larger than `hello_max_bytes`.
        TooLarge = "too_large",
        /// Not a well-formed ClientHello, or closed part-way through one.
        Malformed = "malformed",
        /// The first bytes were not TLS (the policy still decides).
        NotTls = "not_tls",
        /// Closed before sending a byte (a TCP health check).
        Closed = "closed",
        /// The socket failed.
        IoError = "io_error",
        /// Closed at accept: the listener's `max_pending_hellos` were all
        /// waiting for their hellos.
        PendingLimit = "pending_limit",
        /// Closed at accept: this client address (IPv6: /64) already had
        /// `max_pending_hellos_per_client` hellos pending.
        ClientPendingLimit = "client_pending_limit",
    }
}

vocabulary! {
    /// How a policy failed, for `limen_policy_failures_total{kind}` and the
    /// `policy.failed` event. Every kind but `selftest` can happen on a
    /// connection; `init` and `selftest` also refuse a candidate at a swap.
    pub enum PolicyFailure {
        /// The guest trapped (a panic, `unreachable`, a bad memory access).
        Trap = "trap",
        /// The call used its whole fuel budget.
        Fuel = "fuel",
        /// The call passed its wall-clock deadline.
        Deadline = "deadline",
        /// The guest tried to grow memory past its limit.
        Memory = "memory",
        /// limen refused the decision (allow-list, limen's own listener, an
        /// unknown certificate, terminate without a hello, a bad address).
        InvalidDecision = "invalid_decision",
        /// An instance could not be created (`init` failed).
        Init = "init",
        /// A candidate decided otherwise than a `[[policy.expect]]` sample.
        Selftest = "selftest",
    }
}

vocabulary! {
    /// Why no upstream connection was made, for
    /// `limen_upstream_connect_failures_total{reason}`.
    pub enum UpstreamFailure {
        /// The allow-list (or limen's own listeners) excludes every address.
        NotAllowed = "not_allowed",
        /// The name did not resolve.
        Resolve = "resolve",
        /// No address answered in time.
        Timeout = "timeout",
        /// Every address refused.
        Refused = "refused",
        /// The TLS handshake with a re-encrypted upstream failed.
        Tls = "tls",
        /// The decision named a pool with no member up (the fail mode applied).
        NoMember = "no_member",
    }
}

vocabulary! {
    /// Why a pool connection was tried again on another member, for
    /// `limen_upstream_retries_total{reason}`. Every one of them happens
    /// before the member's first byte, while the client has sent nothing
    /// limen cannot replay.
    pub enum RetryReason {
        /// The connect was refused.
        Refused = "refused",
        /// The connect timed out.
        Timeout = "timeout",
        /// Connected, then reset before the member's first byte (a member
        /// killed with the connection in its listen queue).
        Reset = "reset",
        /// Connected, then closed before the member's first byte.
        Closed = "closed",
        /// The TLS handshake with a re-encrypted member failed.
        Tls = "tls",
    }
}

vocabulary! {
    /// What a shadowed candidate made of a connection the live policy
    /// decided, for `limen_policy_shadow_total{outcome}`.
    pub enum ShadowOutcome {
        /// The same decision, once planned.
        Same = "same",
        /// Another decision.
        Different = "different",
        /// The candidate's call failed, or limen would refuse its decision.
        Failed = "failed",
        /// The sample did not fit the worker's queue: not asked.
        Dropped = "dropped",
    }
}

vocabulary! {
    /// Why a terminated connection's handshake with the client failed, for
    /// `limen_tls_handshake_failures_total{reason}`.
    pub enum HandshakeFailure {
        /// Not finished within `handshake_timeout`.
        Timeout = "timeout",
        /// No ALPN protocol in common with the client.
        NoAlpn = "no_alpn",
        /// The client closed mid-handshake.
        ClientClosed = "client_closed",
        /// The socket failed.
        Io = "io",
        /// The client sent an alert.
        ClientAlert = "client_alert",
        /// No protocol version or cipher suite in common.
        Incompatible = "incompatible",
        /// A message that breaks the grammar.
        Malformed = "malformed",
        /// A well-formed message at the wrong time.
        Misbehaved = "misbehaved",
        /// Anything else rustls reports.
        Other = "other",
    }
}

vocabulary! {
    /// How a connection ended: the access log's `end`.
    pub enum End {
        /// Both sides finished; the client's FIN came first (or the client
        /// connected and closed without a byte).
        ClientClose = "client_close",
        /// Both sides finished; the upstream's FIN came first.
        UpstreamClose = "upstream_close",
        /// No bytes either way for the idle timeout.
        IdleTimeout = "idle_timeout",
        /// The client reset the connection (or a write to it failed as
        /// reset): the upstream was reset in turn.
        ClientReset = "client_reset",
        /// The upstream reset the connection: the client was reset in turn,
        /// so a truncated stream never looks complete to it.
        UpstreamReset = "upstream_reset",
        /// Another read or write error (a TLS client closing without
        /// close_notify, a timeout): the other side is closed normally.
        IoError = "io_error",
        /// limen shut down and the grace period ran out.
        Shutdown = "shutdown",
        /// No whole ClientHello within `hello_timeout`.
        HelloTimeout = "hello_timeout",
        /// A malformed or oversized ClientHello.
        BadHello = "bad_hello",
        /// The decision (or fail mode) was a reject: alert sent, closed.
        Rejected = "rejected",
        /// The upstream could not be resolved, allowed or reached.
        ConnectFailed = "connect_failed",
        /// A terminated connection's handshake with the client failed.
        HandshakeFailed = "handshake_failed",
        /// A new QUIC connection came from a flow's client address and port
        /// (a NAT gave the port to another device): that flow ended.
        AddressReused = "address_reused",
    }
}

vocabulary! {
    /// What set a policy change off, for `limen_policy_swaps_total{trigger}`.
    pub enum Trigger {
        /// `limen swap` over the admin endpoint.
        Admin = "admin",
        /// The module file changed on disk.
        File = "file",
        /// A configuration reload (SIGHUP).
        Reload = "reload",
        /// A fleet's source (`[source.etcd]`) published a new policy.
        Source = "source",
    }
}

vocabulary! {
    /// What came of a policy change, for `limen_policy_swaps_total{outcome}`
    /// and of a reload, for `limen_config_reloads_total{outcome}` (which
    /// never counts `unchanged`).
    pub enum ChangeOutcome {
        /// The candidate is live.
        Applied = "applied",
        /// The candidate was refused; the old one serves on.
        Refused = "refused",
        /// The candidate had the live content: nothing changed.
        Unchanged = "unchanged",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels are prometheus label values and log words: lower snake case,
    /// distinct within a vocabulary, and `ALL` is in declaration order.
    fn check<T: Copy + Eq + std::fmt::Debug>(all: &[T], word: impl Fn(T) -> &'static str) {
        let mut seen = std::collections::HashSet::new();
        for (i, value) in all.iter().enumerate() {
            let w = word(*value);
            assert!(
                !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{w}"
            );
            assert!(seen.insert(w), "{w} twice");
            assert_eq!(all.iter().position(|v| v == value), Some(i));
        }
    }

    #[test]
    fn every_vocabulary_has_distinct_snake_case_words() {
        check(&RouteResult::ALL, RouteResult::as_str);
        check(&Stage::ALL, Stage::as_str);
        check(&ParseFailure::ALL, ParseFailure::as_str);
        check(&PolicyFailure::ALL, PolicyFailure::as_str);
        check(&UpstreamFailure::ALL, UpstreamFailure::as_str);
        check(&HandshakeFailure::ALL, HandshakeFailure::as_str);
        check(&RetryReason::ALL, RetryReason::as_str);
        check(&ShadowOutcome::ALL, ShadowOutcome::as_str);
        check(&End::ALL, End::as_str);
        check(&Trigger::ALL, Trigger::as_str);
        check(&ChangeOutcome::ALL, ChangeOutcome::as_str);
        assert_eq!(RouteResult::AcmeChallenge as usize, RouteResult::COUNT - 1);
        assert_eq!(End::HandshakeFailed.to_string(), "handshake_failed");
    }
}
