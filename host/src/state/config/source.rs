//! `[source.etcd]`: the policy, its config and its `expect` samples come
//! from etcd instead of `[policy] module` and `[policy.config]`, so a fleet
//! of limen instances runs what one `limen publish` put there. Read here as
//! written, then checked into a [`SourceConfig`].

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// `[source]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSource {
    pub(crate) etcd: FileEtcd,
}

/// `[source.etcd]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEtcd {
    pub(crate) endpoints: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) state_dir: PathBuf,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) user: Option<String>,
    #[serde(default)]
    pub(crate) password_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
    #[serde(default)]
    pub(crate) cert: Option<PathBuf>,
    #[serde(default)]
    pub(crate) key: Option<PathBuf>,
}

/// Where a fleet's policy comes from, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// etcd client URLs (`http://` or `https://`).
    pub endpoints: Vec<String>,
    /// Every key limen reads or writes is under it (`/limen/prod`).
    pub prefix: String,
    /// The last good policy and its config, for a start without etcd.
    pub state_dir: PathBuf,
    /// This instance's name under `<prefix>/instances/` (default: host name
    /// and process id).
    pub id: Option<String>,
    /// `user` and the file holding its password.
    pub user: Option<(String, PathBuf)>,
    /// TLS to etcd: a CA bundle, and a client certificate and key.
    pub tls: Option<EtcdTls>,
}

impl SourceConfig {
    /// Where a module fetched from etcd is kept: `state_dir/modules/<sha256>.wasm`.
    pub fn module_path(&self, sha256: &str) -> PathBuf {
        self.state_dir
            .join("modules")
            .join(format!("{sha256}.wasm"))
    }
}

/// TLS towards etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA bundle the endpoints are verified against.
    pub ca: Option<PathBuf>,
    /// Client certificate and key, for etcd's `--client-cert-auth`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

pub(super) fn source(file: Option<&FileSource>) -> Result<Option<SourceConfig>, ConfigError> {
    let Some(FileSource { etcd }) = file else {
        return Ok(None);
    };
    let invalid = |msg: String| Err(ConfigError::Invalid(format!("source.etcd: {msg}")));
    if etcd.endpoints.is_empty() {
        return invalid("needs at least one endpoint".into());
    }
    let tls_asked = etcd.ca.is_some() || etcd.cert.is_some();
    for endpoint in &etcd.endpoints {
        let https = endpoint.starts_with("https://");
        if !https && !endpoint.starts_with("http://") {
            return invalid(format!("endpoint `{endpoint}` must be http:// or https://"));
        }
        if https != tls_asked {
            return invalid(format!(
                "endpoint `{endpoint}`: https:// endpoints go with `ca` (or `cert`), http:// without"
            ));
        }
    }
    let prefix = etcd.prefix.trim_end_matches('/');
    if !prefix.starts_with('/') || prefix.len() < 2 {
        return invalid(format!(
            "prefix `{}` must start with / (e.g. /limen/prod)",
            etcd.prefix
        ));
    }
    if etcd.id.as_deref().is_some_and(|id| {
        id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
    }) {
        return invalid("id must be 1-128 printable characters without /".into());
    }
    let user = match (&etcd.user, &etcd.password_file) {
        (Some(user), Some(file)) => Some((user.clone(), file.clone())),
        (None, None) => None,
        _ => return invalid("`user` and `password_file` go together".into()),
    };
    let identity = match (&etcd.cert, &etcd.key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => return invalid("`cert` and `key` go together".into()),
    };
    Ok(Some(SourceConfig {
        endpoints: etcd.endpoints.clone(),
        prefix: prefix.to_owned(),
        state_dir: etcd.state_dir.clone(),
        id: etcd.id.clone(),
        user,
        tls: tls_asked.then(|| EtcdTls {
            ca: etcd.ca.clone(),
            identity,
        }),
    }))
}
