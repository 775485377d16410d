//! One ACME exchange (RFC 8555): the account, then an order for a
//! certificate's names, each authorization proven by TLS-ALPN-01 on limen's
//! own listeners, then the CSR and the chain. The JWS, nonces and polling
//! are instant-acme's; what is limen's is where the challenge is served
//! (the [`Challenges`] table the connection path reads) and what an error
//! says.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, Problem, RetryPolicy,
};
use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::storage::{Storage, Stored};
use crate::state::config::AcmeConfig;
use crate::state::tls::Challenges;

/// How long the CA gets to validate and issue, polled with back-off.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// Why an order failed. The message is what the operator reads in the
/// `acme.failed` event: the CA's problem document when there is one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OrderError {
    /// The CA answered with a problem document (rate limit, bad name...).
    #[error("the CA refused: {0}")]
    Problem(Problem),
    /// A name's validation failed (the CA's detail says why: DNS not pointing
    /// at limen, port 443 not reachable...).
    #[error("validation of {name} failed: {detail}")]
    Invalid { name: String, detail: String },
    /// The directory could not be reached, or answered nonsense.
    #[error("cannot talk to the directory: {0}")]
    Directory(instant_acme::Error),
    /// Storage could not be read or written.
    #[error("storage: {0}")]
    Storage(std::io::Error),
    /// What the CA sent could not be used.
    #[error("unusable certificate: {0}")]
    Unusable(String),
}

impl From<instant_acme::Error> for OrderError {
    fn from(error: instant_acme::Error) -> Self {
        match error {
            instant_acme::Error::Api(problem) => OrderError::Problem(problem),
            other => OrderError::Directory(other),
        }
    }
}

/// The ACME account, shared by every certificate's task: one account per
/// directory, created once (N tasks starting together must not make N
/// accounts against the CA's per-IP limit), cached after.
#[derive(Default)]
pub(crate) struct Accounts(tokio::sync::Mutex<Option<(String, Account)>>);

impl Accounts {
    /// The account for `config`'s directory: the cached one, the stored
    /// one, else a new one (stored at once).
    pub(crate) async fn get(
        &self,
        config: &AcmeConfig,
        storage: &Storage,
    ) -> Result<Account, OrderError> {
        let mut cached = self.0.lock().await;
        if let Some((directory, account)) = &*cached
            && *directory == config.directory
        {
            return Ok(account.clone());
        }
        let account = load_or_create(config, storage).await?;
        *cached = Some((config.directory.clone(), account.clone()));
        Ok(account)
    }

    /// The CA no longer knows `gone`: set its key aside, so the next
    /// [`Accounts::get`] creates a new account (unless another task did
    /// already).
    pub(crate) async fn forget(&self, config: &AcmeConfig, storage: &Storage, gone: &Account) {
        let mut cached = self.0.lock().await;
        if cached.as_ref().is_some_and(|(_, a)| a.id() != gone.id()) {
            return;
        }
        *cached = None;
        let (storage, directory) = (storage.clone(), config.directory.clone());
        if let Err(error) = blocking(move || storage.retire_account(&directory)).await {
            tracing::warn!(target: "tls_sni", %error, "acme: cannot set the old account aside");
        }
    }
}

async fn load_or_create(config: &AcmeConfig, storage: &Storage) -> Result<Account, OrderError> {
    let directory = config.directory.clone();
    let stored = {
        let (storage, directory) = (storage.clone(), directory.clone());
        blocking(move || storage.account(&directory)).await?
    };
    if let Some(json) = stored {
        let credentials: AccountCredentials = serde_json::from_str(&json)
            .map_err(|e| OrderError::Unusable(format!("stored account: {e}")))?;
        let account = builder(config).await?.from_credentials(credentials).await?;
        return Ok(account);
    }
    let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder(config)
        .await?
        .create(&new, directory.clone(), None)
        .await?;
    let json = serde_json::to_string(&credentials)
        .map_err(|e| OrderError::Unusable(format!("account: {e}")))?;
    let storage = storage.clone();
    blocking(move || storage.save_account(&directory, &json)).await?;
    tracing::info!(target: "tls_sni", directory = %config.directory, id = account.id(), "acme.account_created");
    Ok(account)
}

/// Whether `error` says the account is gone from the CA (not merely that
/// a validation was unauthorized: that is the name's problem).
pub(crate) fn account_gone(error: &OrderError) -> bool {
    matches!(error, OrderError::Problem(p)
        if p.r#type.as_deref().is_some_and(|t| t.ends_with(":accountDoesNotExist")))
}

/// An HTTP client for the directory: trusting `ca` when set (a private or
/// test CA), else the platform's roots. Reading `ca` is file I/O: off the
/// runtime.
async fn builder(config: &AcmeConfig) -> Result<instant_acme::AccountBuilder, OrderError> {
    match config.ca.clone() {
        Some(ca) => match tokio::task::spawn_blocking(move || Account::builder_with_root(ca)).await
        {
            Ok(built) => Ok(built?),
            Err(error) => Err(OrderError::Unusable(error.to_string())),
        },
        None => Ok(Account::builder()?),
    }
}

/// Order a certificate for `names`, serving each challenge in `challenges`
/// while the CA validates it (removed again whatever happens).
pub(crate) async fn order(
    account: &Account,
    (certificate, names): (&Arc<str>, &[Arc<str>]),
    challenges: &Challenges,
    provider: &Arc<CryptoProvider>,
) -> Result<Stored, OrderError> {
    let identifiers: Vec<Identifier> = names
        .iter()
        .map(|n| Identifier::Dns(n.to_string()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut serving = Serving {
        challenges,
        certificate,
        names: Vec::new(),
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(OrderError::Invalid {
                    name: identifier(authz.identifier().identifier),
                    detail: format!("authorization is {other:?}"),
                });
            }
        }
        let name: Arc<str> = identifier(authz.identifier().identifier).into();
        let mut challenge = authz
            .challenge(ChallengeType::TlsAlpn01)
            .ok_or_else(|| OrderError::Unusable("the CA offers no tls-alpn-01 challenge".into()))?;
        let key = challenge_key(
            &name,
            challenge.key_authorization().digest().as_ref(),
            provider,
        )?;
        challenges
            .insert((certificate, &name), key, provider)
            .map_err(|e| OrderError::Unusable(e.to_string()))?;
        serving.names.push(name);
        challenge.set_ready().await?;
    }
    let status = match order.poll_ready(&POLL).await {
        Ok(status) => status,
        Err(instant_acme::Error::Timeout(_)) => return Err(why_invalid(&mut order).await),
        Err(error) => return Err(error.into()),
    };
    if status != OrderStatus::Ready {
        return Err(why_invalid(&mut order).await);
    }
    drop(serving);
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&POLL).await?;
    Ok(Stored {
        chain_pem,
        key_pem,
        names: names.iter().map(|n| n.to_string()).collect(),
        directory: String::new(),
    })
}

/// The first failed challenge's problem, for the event.
async fn why_invalid(order: &mut instant_acme::Order) -> OrderError {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        // The state cached from the first pass says `pending`: ask again.
        let Ok(authz) = authz.refresh().await else {
            continue;
        };
        let failed = authz.challenges.iter().find_map(|c| c.error.as_ref());
        if let Some(problem) = failed {
            return OrderError::Invalid {
                name: identifier(authz.identifier().identifier),
                detail: problem.to_string(),
            };
        }
    }
    OrderError::Invalid {
        name: "?".into(),
        detail: "the order became invalid without a problem document".into(),
    }
}

fn identifier(identifier: &Identifier) -> String {
    match identifier {
        Identifier::Dns(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// Challenges served for one order; removed when it ends, however it ends.
struct Serving<'a> {
    challenges: &'a Challenges,
    certificate: &'a Arc<str>,
    names: Vec<Arc<str>>,
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            self.challenges.remove(name, self.certificate);
        }
    }
}

/// RFC 8737 §3: a self-signed certificate for `name` whose critical
/// `acmeIdentifier` extension holds the SHA-256 of the key authorization.
fn challenge_key(
    name: &str,
    digest: &[u8],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<CertifiedKey>, OrderError> {
    let unusable = |e: rcgen::Error| OrderError::Unusable(format!("challenge certificate: {e}"));
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(unusable)?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let key = KeyPair::generate().map_err(unusable)?;
    let cert = params.self_signed(&key).map_err(unusable)?;
    let signing = provider
        .key_provider
        .load_private_key(PrivatePkcs8KeyDer::from(key.serialize_der()).into())
        .map_err(|e| OrderError::Unusable(format!("challenge key: {e}")))?;
    // Not `keys_match`: webpki refuses to parse a leaf with an unknown
    // critical extension, and `acmeIdentifier` is one (the CA knows it).
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// A chain and key as rustls serves them.
pub(crate) fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<CertifiedKey>, OrderError> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| OrderError::Unusable(format!("key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| OrderError::Unusable(format!("key does not match the certificate: {e}")))?;
    Ok(Arc::new(certified))
}

/// Run blocking storage I/O off the runtime. A runtime shutting down
/// cancels it: an error like any other, not a panic.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, OrderError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(OrderError::Storage),
        Err(error) => Err(OrderError::Storage(std::io::Error::other(
            error.to_string(),
        ))),
    }
}
