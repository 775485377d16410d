//! A running limen as the control plane holds it: what every accept loop
//! shares (`Serve`, owned by the path), and what only the control plane
//! keeps beside it (the history of changes, the ACME certificates). The
//! accept loops never see the latter, so the path imports nothing above it.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::control::acme::Acme;
use crate::control::history::History;
use crate::path::accept::Serve;

/// One per process, shared by the control task, the admin endpoint and
/// the status page.
pub(crate) struct Running {
    /// What the accept loops share: the live state, permits, shutdown.
    pub(crate) serve: Arc<Serve>,
    /// The last swaps and reloads (written by the control task).
    pub(crate) history: History,
    /// ACME certificates: their slots and tasks outlive generations.
    pub(crate) acme: Acme,
    /// The admin, metrics and status sockets, duplicated, by their
    /// hand-over names: what an upgrade passes on beside the listeners.
    pub(crate) endpoints: Vec<(&'static str, OwnedFd)>,
    /// The last canary rolled back, and why (for `limen status`).
    pub(crate) rolled_back: std::sync::Mutex<Option<String>>,
}

impl Running {
    /// Fresh duplicates of the endpoints, for an upgrade.
    pub(crate) fn endpoints(&self) -> std::io::Result<Vec<(Arc<str>, Vec<OwnedFd>)>> {
        self.endpoints
            .iter()
            .map(|(name, fd)| Ok((Arc::from(*name), vec![fd.try_clone()?])))
            .collect()
    }
}

/// This binary's release and commit, as `limen --version` gives them.
pub fn binary_version() -> String {
    format!(
        "{} (commit {})",
        env!("CARGO_PKG_VERSION"),
        env!("LIMEN_COMMIT")
    )
}
