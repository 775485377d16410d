//! `[admin]`: where `limen swap` and `limen status` reach a running limen.
//! A unix socket is the default kind (its peer's uid is checked). TCP always
//! needs a token file: on loopback too, since any local user can connect to
//! it; and it is loopback-only unless the config says `allow_public = true`.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::ConfigError;
use super::file::FileAdmin;

/// The admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where it listens.
    pub endpoint: AdminEndpoint,
    /// A file holding the token every request must carry (required for TCP).
    pub token_file: Option<PathBuf>,
}

/// A unix socket path or a TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminEndpoint {
    /// A unix socket, created mode 0600.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

pub(super) fn admin(file: &Option<FileAdmin>) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(file) = file else {
        return Ok(None);
    };
    let invalid = |msg: &str| Err(ConfigError::Invalid(format!("admin: {msg}")));
    let endpoint = match (&file.socket, file.bind) {
        (Some(path), None) => AdminEndpoint::Unix(path.clone()),
        (None, Some(addr)) => {
            if file.token_file.is_none() {
                // Any local user can connect to loopback TCP, and a swap
                // redirects traffic: without a token that is everyone's
                // endpoint (a unix socket checks its peer's uid instead).
                return invalid(
                    "bind (TCP) needs token_file, on loopback too: any local user can reach it; or use socket = \"path\"",
                );
            }
            if !addr.ip().is_loopback() && !file.allow_public {
                return invalid(
                    "bind is not a loopback address; set allow_public = true to expose the admin endpoint",
                );
            }
            AdminEndpoint::Tcp(addr)
        }
        _ => return invalid("give exactly one of socket = \"path\" or bind = \"127.0.0.1:port\""),
    };
    Ok(Some(AdminConfig {
        endpoint,
        token_file: file.token_file.clone(),
    }))
}
