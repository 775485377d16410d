//! `[acme]` and `[certificates.NAME] acme = [...]`: certificates limen
//! obtains and renews itself (RFC 8555), validated by TLS-ALPN-01 (RFC 8737)
//! on its own listeners. Read here as written, then checked into an
//! [`AcmeConfig`] without contacting the directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The most names one certificate may carry (Let's Encrypt's limit).
const MAX_NAMES: usize = 100;

/// `[acme]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAcme {
    pub(crate) directory: String,
    #[serde(default)]
    pub(crate) contact: Vec<String>,
    pub(crate) storage: PathBuf,
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
    #[serde(default)]
    pub(crate) renew_before: Option<FileRenewBefore>,
}

/// `renew_before = "30d"` or a fraction of the lifetime: `0.25` or `"25%"`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a duration (\"30d\"), a fraction (0.25) or a percentage (\"25%\")"
)]
pub(crate) enum FileRenewBefore {
    Fraction(f64),
    Text(String),
}

/// `[acme]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    /// The directory URL (`https://`).
    pub directory: String,
    /// `mailto:` addresses for the account.
    pub contact: Vec<String>,
    /// Account key, certificates and keys (dir 0700, files 0600).
    pub storage: PathBuf,
    /// Extra trust for the directory's own TLS (a private or test CA).
    pub ca: Option<PathBuf>,
    /// When a certificate is renewed.
    pub renew_before: RenewBefore,
}

/// How long before expiry a certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewBefore {
    /// A fixed time before `not_after`.
    Time(Duration),
    /// A fraction (0 to 1, exclusive) of the certificate's lifetime.
    Fraction(f64),
}

impl Default for RenewBefore {
    /// A third of the lifetime: 30 days of a 90-day certificate.
    fn default() -> Self {
        RenewBefore::Fraction(1.0 / 3.0)
    }
}

impl RenewBefore {
    /// How long before `not_after` to renew a certificate valid `lifetime`.
    /// A fixed time longer than the lifetime renews at once (and is capped
    /// to it, so a mistyped `900d` cannot renew in a loop faster than the
    /// back-off).
    pub fn ahead(self, lifetime: Duration) -> Duration {
        match self {
            RenewBefore::Time(time) => time.min(lifetime),
            RenewBefore::Fraction(fraction) => lifetime.mul_f64(fraction),
        }
    }
}

/// One ACME-managed `[certificates.NAME]` entry: the DNS names it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeNames(pub Vec<Arc<str>>);

pub(super) fn acme(file: Option<&FileAcme>) -> Result<Option<AcmeConfig>, ConfigError> {
    let Some(file) = file else { return Ok(None) };
    let invalid = |msg: String| Err(ConfigError::Invalid(format!("acme: {msg}")));
    if !file.directory.starts_with("https://") || file.directory.len() <= "https://".len() {
        return invalid(format!(
            "directory `{}` must be an https:// URL (RFC 8555 requires TLS)",
            file.directory
        ));
    }
    for contact in &file.contact {
        if !contact.starts_with("mailto:") || !contact.contains('@') {
            return invalid(format!(
                "contact `{contact}` must be a mailto: address (mailto:ops@example.com)"
            ));
        }
    }
    if file.storage.as_os_str().is_empty() {
        return invalid("storage must name a directory".into());
    }
    let renew_before = match &file.renew_before {
        None => RenewBefore::default(),
        Some(value) => {
            renew_before(value).map_err(|m| ConfigError::Invalid(format!("acme: {m}")))?
        }
    };
    Ok(Some(AcmeConfig {
        directory: file.directory.clone(),
        contact: file.contact.clone(),
        storage: file.storage.clone(),
        ca: file.ca.clone(),
        renew_before,
    }))
}

fn renew_before(value: &FileRenewBefore) -> Result<RenewBefore, String> {
    let fraction = |f: f64| {
        (f > 0.0 && f < 1.0)
            .then_some(RenewBefore::Fraction(f))
            .ok_or_else(|| format!("renew_before {f} must be a fraction between 0 and 1"))
    };
    match value {
        FileRenewBefore::Fraction(f) => fraction(*f),
        FileRenewBefore::Text(text) => match text.strip_suffix('%') {
            Some(percent) => fraction(
                percent
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("renew_before `{text}` is not a percentage"))?
                    / 100.0,
            ),
            None => match humantime::parse_duration(text) {
                Ok(time) if !time.is_zero() => Ok(RenewBefore::Time(time)),
                _ => Err(format!(
                    "renew_before `{text}` is not a duration (\"30d\") or a percentage (\"25%\")"
                )),
            },
        },
    }
}

/// The names of `[certificates.NAME] acme = [...]`, checked: DNS names
/// TLS-ALPN-01 can validate (no wildcard: RFC 8737 cannot prove one), in
/// lower case, at least one, none twice.
pub(super) fn names(entry: &str, written: &[String]) -> Result<AcmeNames, ConfigError> {
    let invalid = |msg: String| Err(ConfigError::Invalid(format!("certificates.{entry}: {msg}")));
    if written.is_empty() || written.len() > MAX_NAMES {
        return invalid(format!("acme needs 1 to {MAX_NAMES} names"));
    }
    let mut names: Vec<Arc<str>> = Vec::with_capacity(written.len());
    for name in written {
        if name.starts_with("*.") {
            return invalid(format!(
                "acme name `{name}`: a wildcard needs DNS-01, and limen validates by TLS-ALPN-01"
            ));
        }
        if !is_dns_name(name) {
            return invalid(format!("acme name `{name}` is not a DNS name"));
        }
        let name: Arc<str> = name.to_ascii_lowercase().into();
        if names.contains(&name) {
            return invalid(format!("acme name `{name}` is listed twice"));
        }
        names.push(name);
    }
    Ok(AcmeNames(names))
}

/// A fully qualified host name: dot-separated labels of letters, digits and
/// inner hyphens, at least two labels, not all-numeric at the end (so not
/// an IP address), 253 bytes at most.
fn is_dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && !labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_before_reads_durations_fractions_and_percentages() {
        let text = |s: &str| renew_before(&FileRenewBefore::Text(s.into()));
        let day = Duration::from_secs(86_400);
        assert_eq!(text("30d"), Ok(RenewBefore::Time(30 * day)));
        assert_eq!(text("25%"), Ok(RenewBefore::Fraction(0.25)));
        assert_eq!(
            renew_before(&FileRenewBefore::Fraction(0.5)),
            Ok(RenewBefore::Fraction(0.5))
        );
        assert!(text("0s").is_err() && text("150%").is_err() && text("soon").is_err());
        assert!(renew_before(&FileRenewBefore::Fraction(1.0)).is_err());
        assert_eq!(RenewBefore::default().ahead(90 * day), 30 * day);
        assert_eq!(RenewBefore::Time(900 * day).ahead(90 * day), 90 * day);
    }

    #[test]
    fn names_are_dns_names_without_wildcards_or_repeats() {
        let names = |list: &[&str]| {
            let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            super::names("shop", &list)
        };
        let ok = names(&["Shop.Example.com", "www.shop.example.com"]).unwrap();
        assert_eq!(&*ok.0[0], "shop.example.com");
        for bad in [
            &["*.example.com"][..],
            &["localhost"],
            &["10.0.0.1"],
            &["a..b"],
            &["-a.example.com"],
            &["a.example.com", "A.example.com"],
            &[],
        ] {
            assert!(names(bad).is_err(), "{bad:?} accepted");
        }
    }
}
