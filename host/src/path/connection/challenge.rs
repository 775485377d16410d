//! A TLS-ALPN-01 validation connection (RFC 8737): an ACME CA proving that
//! a name limen is ordering a certificate for points at limen. It offers
//! ALPN `acme-tls/1` for that name, and limen answers it itself with the
//! challenge certificate, before any policy is asked: only limen can, and
//! no backend should see it. Any other hello offering `acme-tls/1` (a name
//! with no order pending) goes to the policy like any other.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::trail::Trail;
use super::{Context, Decided, Peeked};
use crate::hello::HelloSummary;
use crate::observe::access;
use crate::observe::metrics::RouteResult;
use crate::outcome::End;
use crate::path::action::Action;
use crate::path::action::terminate;
use crate::policy::limit_table::Held;
use crate::state::tls::Challenge;

/// The CA closes once it has read the certificate; a close_notify that
/// takes longer is not waited for.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

impl Peeked {
    /// The decision for a validation connection, if this is one.
    pub(super) fn challenge(&mut self, cx: &Context, trail: &mut Trail) -> Option<Action> {
        let hello = trail.hello()?;
        let sni = hello.sni().map(|n| n.as_ref());
        let challenge = cx.generation.tls.certs.challenge(sni, hello.alpn())?;
        let hello = hello.clone();
        cx.generation.metrics.acme_challenge(&challenge.certificate);
        self.active.metrics().route(RouteResult::AcmeChallenge);
        tracing::info!(
            target: "tls_sni", listener = &*cx.conn.listener, client = %cx.conn.client,
            sni, certificate = &*challenge.certificate, "acme.challenge_answered"
        );
        trail.decided(
            RouteResult::AcmeChallenge,
            self.live.policy.version().id.clone(),
        );
        Some(Action::Challenge { challenge, hello })
    }

    /// This connection, decided as `action` without asking the policy.
    pub(super) fn decided_by_limen(self, action: Action) -> Decided {
        Decided {
            stream: self.stream,
            active: self.active,
            bytes: self.bytes,
            action,
            held: Held::default(),
        }
    }
}

/// Complete the handshake with the challenge certificate (the CA checks it
/// and the negotiated `acme-tls/1`), then close.
pub(super) async fn answer(
    cx: &Context,
    trail: &mut Trail,
    stream: TcpStream,
    bytes: Vec<u8>,
    (challenge, hello): (Challenge, &HelloSummary),
) -> ((u64, u64), End) {
    trail.acting(access::ActionTaken::AcmeChallenge, None);
    let timeout = cx.generation.limits.handshake_timeout;
    let config = Arc::clone(&challenge.config);
    match terminate::handshake(stream, bytes, hello, config, timeout).await {
        Ok(mut tls) => {
            let _ = tokio::time::timeout(CLOSE_WAIT, tls.shutdown()).await;
            ((0, 0), End::ClientClose)
        }
        Err(error) => {
            tracing::info!(
                target: "tls_sni", listener = &*cx.conn.listener, client = %cx.conn.client,
                certificate = &*challenge.certificate, reason = error.reason().as_str(), %error,
                "acme.challenge_failed"
            );
            ((0, 0), End::HandshakeFailed)
        }
    }
}
