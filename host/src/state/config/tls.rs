//! The TLS part of the config: named certificates for `terminate`, and how
//! re-encrypted upstreams are verified. Only paths and choices live here; the
//! files are read by `crate::state::tls` when limen starts.

use std::path::PathBuf;
use std::sync::Arc;

use super::ConfigError;
use super::acme::{self, AcmeConfig, AcmeNames};
use super::file::{FileCertificate, FileUpstreamTls};
use crate::upstream::tls::UpstreamTrust;

/// One `[certificates.NAME]` entry: the name a policy uses, and its keys.
#[derive(Debug, Clone)]
pub struct CertificateConfig {
    /// What a `terminate` decision names.
    pub name: Arc<str>,
    /// Where its keys come from.
    pub source: CertificateSource,
}

/// Files the operator keeps, or an ACME CA through limen.
#[derive(Debug, Clone, PartialEq)]
pub enum CertificateSource {
    /// One or more chain + key pairs (e.g. ECDSA and RSA); at least one.
    Files(Vec<KeyPairPaths>),
    /// Obtained and renewed by limen for these names (`[acme]`).
    Acme(AcmeNames),
}

/// A PEM certificate chain (leaf first) and its private key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPairPaths {
    /// PEM file with the leaf certificate first, then intermediates.
    pub chain: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A policy may name a few variants per entry; more than this is a mistake.
const MAX_PAIRS: usize = 4;

pub(super) fn certificates(
    file: &std::collections::BTreeMap<String, FileCertificate>,
    acme_config: Option<&AcmeConfig>,
) -> Result<Vec<CertificateConfig>, ConfigError> {
    let certificates = entries(file, acme_config)?;
    // One order per DNS name at a time: two entries ordering the same name
    // would answer each other's challenges with the wrong proof.
    let mut seen = std::collections::HashMap::new();
    for entry in &certificates {
        let CertificateSource::Acme(names) = &entry.source else {
            continue;
        };
        for name in &names.0 {
            if let Some(other) = seen.insert(name.clone(), entry.name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "certificates.{}: acme name `{name}` is also in certificates.{other}",
                    entry.name
                )));
            }
        }
    }
    Ok(certificates)
}

fn entries(
    file: &std::collections::BTreeMap<String, FileCertificate>,
    acme_config: Option<&AcmeConfig>,
) -> Result<Vec<CertificateConfig>, ConfigError> {
    file.iter()
        .map(|(name, entry)| {
            let invalid =
                |msg: String| Err(ConfigError::Invalid(format!("certificates.{name}: {msg}")));
            if name.is_empty() {
                return invalid("needs a non-empty name".into());
            }
            let pairs = match entry {
                FileCertificate::One(pair) => std::slice::from_ref(pair),
                FileCertificate::Many(pairs) => pairs,
                FileCertificate::Acme(names) => {
                    if acme_config.is_none() {
                        return invalid("`acme = [...]` needs an [acme] section".into());
                    }
                    return Ok(CertificateConfig {
                        name: name.as_str().into(),
                        source: CertificateSource::Acme(acme::names(name, &names.acme)?),
                    });
                }
            };
            if !(1..=MAX_PAIRS).contains(&pairs.len()) {
                return invalid(format!("needs 1 to {MAX_PAIRS} chain/key pairs"));
            }
            let pairs = pairs
                .iter()
                .map(|p| KeyPairPaths {
                    chain: p.chain.clone(),
                    key: p.key.clone(),
                })
                .collect();
            Ok(CertificateConfig {
                name: name.as_str().into(),
                source: CertificateSource::Files(pairs),
            })
        })
        .collect()
}

pub(super) fn upstream_trust(file: &FileUpstreamTls) -> Result<UpstreamTrust, ConfigError> {
    match (&file.ca, file.dangerously_accept_any_certificate) {
        (Some(_), true) => Err(ConfigError::Invalid(
            "upstream_tls: `ca` and `dangerously_accept_any_certificate` exclude each other".into(),
        )),
        (Some(ca), false) => Ok(UpstreamTrust::CaFile(ca.clone())),
        (None, true) => Ok(UpstreamTrust::AcceptAnyCertificate),
        (None, false) => Ok(UpstreamTrust::SystemRoots),
    }
}

/// Certificate names a policy's config refers to, by convention: every string
/// under a key named `certificate`, at any depth (as `static-routes` writes
/// `terminate = { certificate = "..." }`). Policies decide at run time, so
/// this is a check of what the config says, not a proof of what the policy
/// will name; `limen check` and start-up use it to catch typos early.
pub fn referenced_certificates(config_json: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("certificate", serde_json::Value::String(name)) => {
                            if !found.contains(name) {
                                found.push(name.clone());
                            }
                        }
                        _ => walk(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    if let Ok(value) = serde_json::from_str(config_json) {
        walk(&value, &mut found);
    }
    found
}
