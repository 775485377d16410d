//! `[admin]`: where `limen swap` and `limen status` reach a running limen.
//! A unix socket is the default kind; TCP is loopback-only unless the config
//! says `allow_public = true` *and* names a token file.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::ConfigError;
use super::file::FileAdmin;

/// The admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where it listens.
    pub endpoint: AdminEndpoint,
    /// A file holding the token every request must carry (required for a
    /// non-loopback bind).
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
            if !addr.ip().is_loopback() {
                if !file.allow_public {
                    return invalid(
                        "bind is not a loopback address; set allow_public = true (and token_file) to expose the admin endpoint",
                    );
                }
                if file.token_file.is_none() {
                    return invalid("a non-loopback bind needs token_file");
                }
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
