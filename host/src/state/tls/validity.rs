//! Validity dates of a leaf certificate. An expired certificate is served
//! anyway (refusing to start would turn a renewal slip into an outage of
//! every name) but limen warns, at start and in `limen check`.

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A warning when `leaf` is expired or not valid yet at `now` (Unix seconds).
pub(super) fn check(name: &str, leaf: &CertificateDer<'_>, now: i64) -> Option<String> {
    let (_, cert) = match X509Certificate::from_der(leaf) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Some(format!(
                "certificates.{name}: cannot read the leaf's dates: {e}"
            ));
        }
    };
    let validity = cert.validity();
    let (from, to) = (validity.not_before, validity.not_after);
    if now < from.timestamp() {
        Some(format!("certificates.{name}: not valid before {from}"))
    } else if now > to.timestamp() {
        Some(format!("certificates.{name}: expired on {to}"))
    } else {
        None
    }
}

/// The leaf's `notBefore` and `notAfter`, in Unix seconds.
pub(crate) fn dates(leaf: &CertificateDer<'_>) -> Option<(i64, i64)> {
    let (_, cert) = X509Certificate::from_der(leaf).ok()?;
    let validity = cert.validity();
    Some((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn expired_and_future_certificates_warn() {
        let mut params = rcgen::CertificateParams::new(vec!["x.test".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der();
        let jan_2020 = 1_577_836_800;
        assert!(check("x", der, jan_2020 + 86_400).is_none());
        assert!(
            check("x", der, jan_2020 - 86_400)
                .unwrap()
                .contains("not valid before")
        );
        assert!(
            check("x", der, jan_2020 + 400 * 86_400)
                .unwrap()
                .contains("expired")
        );
    }
}
