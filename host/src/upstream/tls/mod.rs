//! The client side of re-encryption: how limen verifies the upstreams it
//! speaks TLS to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

mod error;
pub(crate) mod pem;

pub use error::TlsError;

/// How limen decides to trust an upstream it re-encrypts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTrust {
    /// The operating system's root store (the default).
    SystemRoots,
    /// Only the CAs in this PEM bundle.
    CaFile(PathBuf),
    /// No verification at all: `dangerously_accept_any_certificate = true`.
    AcceptAnyCertificate,
}

/// A connector shared by every re-encrypted connection (its session cache
/// lets repeated upstream handshakes resume).
pub(crate) struct UpstreamTls {
    pub(crate) connector: TlsConnector,
}

impl UpstreamTls {
    pub(crate) fn load(
        trust: &UpstreamTrust,
        provider: &Arc<CryptoProvider>,
        warnings: &mut Vec<String>,
    ) -> Result<UpstreamTls, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Trust(e.to_string()))?;
        let config = match trust {
            UpstreamTrust::AcceptAnyCertificate => {
                let warning = "upstream_tls: dangerously_accept_any_certificate is on: \
                               re-encrypted upstreams are NOT authenticated"
                    .to_owned();
                warnings.push(warning);
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAny(provider.clone())))
                    .with_no_client_auth()
            }
            UpstreamTrust::CaFile(path) => builder
                .with_root_certificates(roots_from(path)?)
                .with_no_client_auth(),
            UpstreamTrust::SystemRoots => {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                // Not fatal: the store is only needed if a policy re-encrypts.
                if added == 0 {
                    let warning = format!(
                        "upstream_tls: no system root certificates found ({} errors); \
                         re-encrypted upstreams will fail verification unless `ca` is set",
                        found.errors.len()
                    );
                    warnings.push(warning);
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(UpstreamTls {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }
}

/// The connector of a pool's TLS health check: it verifies the member's
/// certificate against `ca` when one is given, and accepts any otherwise (a
/// check asks "does it speak TLS", which needs no trust). Blocking: reads `ca`.
pub(crate) fn check_connector(ca: Option<&Path>) -> Result<TlsConnector, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Trust(e.to_string()))?;
    let config = match ca {
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
        Some(path) => builder
            .with_root_certificates(roots_from(path)?)
            .with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A connector for a control-plane client (etcd): the server verified
/// against `ca`, or the system roots without one; `identity` (chain, key)
/// presented when the server asks. Blocking: reads the files.
pub(crate) fn client_connector(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<TlsConnector, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Trust(e.to_string()))?;
    let roots = match ca {
        Some(path) => roots_from(path)?,
        None => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        }
    };
    let builder = builder.with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let key = pem::key(key, &mut Vec::new())?;
            builder
                .with_client_auth_cert(pem::chain(chain)?, key)
                .map_err(|e| TlsError::Trust(format!("client certificate: {e}")))?
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The CAs of a PEM bundle.
fn roots_from(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::chain(path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Trust(format!("CA in {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// Accepts any certificate, but still checks the handshake signature against
/// the certificate shown, so at least the peer holds that key.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
