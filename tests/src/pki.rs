//! A throwaway CA and a leaf certificate for the test backends' names.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and one leaf it signed; [`Pki::issue`] signs more.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate, PEM (for `openssl -CAfile`, `curl --cacert`).
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    /// The leaf's chain, PEM.
    pub leaf_pem: String,
    /// The leaf's key, PKCS#8 PEM.
    pub key_pem: String,
    key_der: Vec<u8>,
}

impl Pki {
    /// A CA and a leaf valid for `names` (wildcards allowed).
    pub fn new(names: &[&str]) -> anyhow::Result<Pki> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "limen test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names)?.signed_by(&key, &ca)?;
        Ok(Pki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            leaf_pem: leaf.pem(),
            leaf: leaf.der().clone(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            ca,
        })
    }

    /// Another leaf from the same CA for `names` (CN = the first name), with
    /// `key` (a fresh ECDSA P-256 key when `None`): (chain PEM, key PEM).
    pub fn issue(&self, names: &[&str], key: Option<KeyPair>) -> anyhow::Result<(String, String)> {
        let key = match key {
            Some(key) => key,
            None => KeyPair::generate()?,
        };
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("leaf"),
        );
        let leaf = params.signed_by(&key, &self.ca)?;
        Ok((leaf.pem(), key.serialize_pem()))
    }

    /// [`Pki::issue`] written to `dir/<stem>.pem` and `dir/<stem>.key` (mode
    /// 0600): the paths for a `[certificates.NAME]` entry.
    pub fn issue_files(
        &self,
        dir: &std::path::Path,
        stem: &str,
        names: &[&str],
        key: Option<KeyPair>,
    ) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let (chain, key) = self.issue(names, key)?;
        std::fs::create_dir_all(dir)?;
        let (chain_path, key_path) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&chain_path, chain)?;
        write_private(&key_path, key.as_bytes())?;
        Ok((chain_path, key_path))
    }

    /// A client certificate from this CA, written to `dir/<stem>.pem` and
    /// `.key`: with `common_name`, or with an empty subject (what etcd's
    /// JSON gateway asks of clients when its users are on).
    pub fn client_files(
        &self,
        dir: &std::path::Path,
        stem: &str,
        common_name: Option<&str>,
    ) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(name) = common_name {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
        }
        let cert = params.signed_by(&key, &self.ca)?;
        std::fs::create_dir_all(dir)?;
        let (chain_path, key_path) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&chain_path, cert.pem())?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        Ok((chain_path, key_path))
    }
}

/// Write a key file readable by its owner only.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(bytes)?;
    Ok(())
}

impl Pki {
    /// A server config presenting the leaf.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], key)?;
        Ok(Arc::new(config))
    }

    /// A client config trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&str]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
