//! The etcd client limen needs, over etcd's JSON gateway (`/v3/...`, served
//! on every client port since etcd 3.3) by hyper: key reads and writes,
//! one conditional put, leases, a watch, user and password.
//!
//! Why not a gRPC client: the Rust ones generate their code with `protoc`
//! at build time, which a machine with only Rust on it does not have, and
//! they bring tonic, prost and tower for six calls. hyper and rustls are
//! here already; the gateway is etcd's own, documented translation of the
//! same API, and its streams (watch, keep-alive) are chunked JSON.
//!
//! A `Client` keeps one HTTP/1.1 connection and uses it for one call at a
//! time; a watch has a connection of its own. Connecting tries each
//! endpoint in turn. Every call is bounded by [`TIMEOUT`].

mod ops;
mod transport;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

use transport::{Connection, Endpoint, MAX_ANSWER, Messages};
pub(crate) use wire::WatchResponse;
use wire::{Streamed, UNAUTHENTICATED};

/// Each call (connect, request, answer) ends after this.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// Why an etcd call failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// An endpoint as configured cannot be used.
    #[error("endpoint {0}")]
    Endpoint(String),
    /// No connection could be made.
    #[error("connecting to {endpoint}: {what}")]
    Connect {
        /// `host:port`.
        endpoint: String,
        /// Why.
        what: String,
    },
    /// The connection failed mid-call.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// etcd answered with an error (a gRPC status code and its message).
    #[error("{message} (code {code})")]
    Status {
        /// gRPC's code: 16 unauthenticated, 5 not found, 14 unavailable...
        code: i64,
        /// etcd's words.
        message: String,
    },
    /// etcd refused the request before the API saw it (its HTTP layer).
    #[error("etcd refused the request: {0}")]
    Refused(String),
    /// An answer that is not what the API says it is.
    #[error("unreadable answer: {0}")]
    Answer(String),
    /// The call took longer than [`TIMEOUT`].
    #[error("no answer within {}s", TIMEOUT.as_secs())]
    Timeout,
}

/// What every connection of one client shares.
struct Settings {
    endpoints: Vec<Endpoint>,
    tls: Option<TlsConnector>,
    /// User and password, authenticated for a token at connect and again
    /// whenever etcd says the token is no longer valid.
    user: Option<(String, String)>,
}

/// A client of one etcd cluster.
pub struct Client {
    settings: Arc<Settings>,
    connection: Option<Connection>,
    /// The endpoint to try first: the one that answered last.
    preferred: usize,
    token: Option<String>,
}

impl Client {
    /// Reach one of `endpoints` (and sign in, given a user).
    pub(crate) async fn connect(
        endpoints: &[String],
        tls: Option<TlsConnector>,
        user: Option<(String, String)>,
    ) -> Result<Client, EtcdError> {
        let endpoints = endpoints
            .iter()
            .map(|url| Endpoint::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::Endpoint("none configured".into()));
        }
        let mut client = Client {
            settings: Arc::new(Settings {
                endpoints,
                tls,
                user,
            }),
            connection: None,
            preferred: 0,
            token: None,
        };
        client.sign_in().await?;
        Ok(client)
    }

    /// A client on the same cluster with a connection of its own (for a
    /// task that runs beside this one), signed in with the same token.
    pub(crate) fn fork(&self) -> Client {
        Client {
            settings: self.settings.clone(),
            connection: None,
            preferred: self.preferred,
            token: self.token.clone(),
        }
    }

    /// One call: `request` to `path`, its answer parsed. An expired token
    /// is renewed and the call made once more.
    pub(crate) async fn call<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        path: &str,
        request: &Q,
    ) -> Result<A, EtcdError> {
        match self.call_once(path, request).await {
            Err(EtcdError::Status { code, .. })
                if code == UNAUTHENTICATED && self.settings.user.is_some() =>
            {
                self.token = None;
                tracing::info!(target: "tls_sni", "source.token_expired: signing in again");
                self.sign_in().await?;
                self.call_once(path, request).await
            }
            other => other,
        }
    }

    /// Watch the key: its changes from `start_revision` on.
    pub(crate) async fn watch(
        &mut self,
        key: &[u8],
        start_revision: i64,
    ) -> Result<Watch, EtcdError> {
        let request = wire::WatchRequest {
            create_request: wire::WatchCreate {
                key: key.to_vec(),
                start_revision,
            },
        };
        let body = json(&request);
        let opened = async {
            let mut connection = self.open().await?;
            connection.sender.ready().await?;
            let response = connection
                .sender
                .send_request(self.request("/v3/watch", body)?)
                .await?;
            Ok::<_, EtcdError>((connection, response))
        };
        let (connection, response) = bounded(opened).await?;
        if response.status() != StatusCode::OK {
            let answer = bounded(read(response.into_body())).await?;
            return Err(status(&answer));
        }
        Ok(Watch {
            messages: Messages::new(response.into_body()),
            _connection: connection,
        })
    }

    async fn call_once<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        path: &str,
        request: &Q,
    ) -> Result<A, EtcdError> {
        let request = self.request(path, json(request))?;
        let exchange = async {
            // A kept connection is used once hyper says it is ready for the
            // next request (the last answer wholly processed); one etcd
            // closed meanwhile is replaced.
            let kept = match self.connection.take() {
                Some(mut kept) => kept.sender.ready().await.is_ok().then_some(kept),
                None => None,
            };
            let mut connection = match kept {
                Some(kept) => kept,
                None => self.open().await?,
            };
            connection.sender.ready().await?;
            let response = connection.sender.send_request(request).await?;
            let ok = response.status() == StatusCode::OK;
            let answer = read(response.into_body()).await?;
            // Kept for the next call once this one is wholly read.
            self.connection = Some(connection);
            Ok::<_, EtcdError>((ok, answer))
        };
        let (ok, answer) = bounded(exchange).await.inspect_err(|_| {
            self.connection = None;
        })?;
        if !ok {
            return Err(status(&answer));
        }
        serde_json::from_slice(&answer).map_err(|e| EtcdError::Answer(format!("{path}: {e}")))
    }

    /// A connection to the preferred endpoint, or the next that answers.
    async fn open(&mut self) -> Result<Connection, EtcdError> {
        let count = self.settings.endpoints.len();
        let mut last = None;
        for step in 0..count {
            let index = (self.preferred + step) % count;
            let endpoint = &self.settings.endpoints[index];
            match transport::open(endpoint, self.settings.tls.as_ref()).await {
                Ok(connection) => {
                    self.preferred = index;
                    return Ok(connection);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| EtcdError::Endpoint("none configured".into())))
    }

    fn request(&self, path: &str, body: Vec<u8>) -> Result<Request<Full<Bytes>>, EtcdError> {
        let endpoint = &self.settings.endpoints[self.preferred];
        let mut request = Request::post(path)
            .header(hyper::header::HOST, &endpoint.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            // etcd takes the bare token, no scheme.
            request = request.header(hyper::header::AUTHORIZATION, token);
        }
        request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| EtcdError::Answer(format!("request: {e}")))
    }

    /// Without a user, only reach an endpoint: a start that cannot reach
    /// etcd should say so now, not at its first read.
    async fn sign_in(&mut self) -> Result<(), EtcdError> {
        let Some((name, password)) = self.settings.user.clone() else {
            let connection = bounded(self.open()).await?;
            self.connection = Some(connection);
            return Ok(());
        };
        let request = wire::AuthRequest {
            name: &name,
            password: &password,
        };
        let answer: wire::AuthResponse = self.call_once("/v3/auth/authenticate", &request).await?;
        self.token = Some(answer.token);
        Ok(())
    }
}

/// A watch's stream of changes; its connection closes when it is dropped.
pub(crate) struct Watch {
    messages: Messages,
    _connection: Connection,
}

impl Watch {
    /// The next batch of changes (or the watch's creation, or its
    /// cancellation); `None` when etcd ended the stream.
    pub(crate) async fn message(&mut self) -> Result<Option<WatchResponse>, EtcdError> {
        let Some(message) = self.messages.next::<Streamed<WatchResponse>>().await? else {
            return Ok(None);
        };
        match (message.result, message.error) {
            (_, Some(error)) => Err(EtcdError::Status {
                code: error.code,
                message: error.message,
            }),
            (Some(result), None) => Ok(Some(result)),
            (None, None) => Ok(Some(WatchResponse::default())),
        }
    }
}

async fn bounded<T>(call: impl Future<Output = Result<T, EtcdError>>) -> Result<T, EtcdError> {
    tokio::time::timeout(TIMEOUT, call)
        .await
        .unwrap_or(Err(EtcdError::Timeout))
}

/// An answer's bytes, at most [`MAX_ANSWER`] of them.
async fn read(body: hyper::body::Incoming) -> Result<Bytes, EtcdError> {
    let collected = Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| EtcdError::Answer(e.to_string()))?;
    Ok(collected.to_bytes())
}

/// The error an answer other than 200 carries.
fn status(answer: &[u8]) -> EtcdError {
    match serde_json::from_slice::<wire::Status>(answer) {
        Ok(status) if !status.message.is_empty() => EtcdError::Status {
            code: status.code,
            message: status.message,
        },
        _ => {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]);
            let text = text.trim();
            // etcd's gateway cannot pass a certificate's name on as the
            // user, so with users on it refuses certificates that have one.
            let hint = if text.contains("CommonName") {
                " (with users on, etcd's JSON API, which limen speaks, accepts only client \
                 certificates without a Common Name: the user and password say who calls)"
            } else {
                ""
            };
            EtcdError::Refused(format!("{text}{hint}"))
        }
    }
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data: serialising cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
