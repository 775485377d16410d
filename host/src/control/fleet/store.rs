//! etcd, as limen uses it: connect (TLS, user and password), store a module
//! in chunks, read it back verified, point `live` (or `candidate`) at it in
//! one transaction.
//! Through [`super::etcd`]; every call bounded by its timeout.

use super::etcd::{Client, EtcdError};
use super::layout::{self, CHUNK, CandidateRecord, Keys, LiveRecord, MAX_MODULE, Meta};
use crate::state::config::SourceConfig;
use crate::upstream::tls::{TlsError, client_connector};

/// Why an etcd exchange did not give what was needed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// etcd could not be reached or refused the request.
    #[error("etcd: {0}")]
    Etcd(#[from] EtcdError),
    /// A file the options name (password, CA, client key) could not be read.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The CA or client certificate `[source.etcd]` names cannot be used.
    #[error("[source.etcd] TLS: {0}")]
    Tls(#[from] TlsError),
    /// What is stored is not what it should be (a missing chunk, a hash
    /// that does not match, a record that does not parse).
    #[error("{0}")]
    Corrupt(String),
}

/// Connect to `source`'s endpoints (reading its password and TLS files:
/// off the runtime, they are few and small).
pub async fn connect(source: &SourceConfig) -> Result<Client, StoreError> {
    let files = source.clone();
    let (tls, user) = tokio::task::spawn_blocking(move || settings(&files))
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))??;
    Ok(Client::connect(&source.endpoints, tls, user).await?)
}

type Settings = (Option<tokio_rustls::TlsConnector>, Option<(String, String)>);

fn settings(source: &SourceConfig) -> Result<Settings, StoreError> {
    let user = match &source.user {
        Some((user, file)) => {
            let password = std::fs::read(file).map_err(|e| StoreError::File {
                path: file.display().to_string(),
                error: e.to_string(),
            })?;
            let password = String::from_utf8_lossy(&password).trim().to_owned();
            Some((user.clone(), password))
        }
        None => None,
    };
    let tls = match &source.tls {
        Some(tls) => {
            let identity = tls
                .identity
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            Some(client_connector(tls.ca.as_deref(), identity)?)
        }
        None => None,
    };
    Ok((tls, user))
}

/// Store `module` under its hash, unless it is there already (then nothing
/// is sent). The chunks go first and `meta` last: a reader that finds
/// `meta` finds every chunk. Returns (hash, uploaded).
pub async fn upload(
    client: &mut Client,
    keys: &Keys,
    module: &[u8],
) -> Result<(String, bool), StoreError> {
    let hash = layout::hash(module);
    if client.exists(keys.meta(&hash).as_bytes()).await? {
        return Ok((hash, false));
    }
    let chunks: Vec<&[u8]> = module.chunks(CHUNK).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let key = keys.chunk(&hash, index);
        client.put(key.as_bytes(), chunk.to_vec(), 0).await?;
    }
    let meta = Meta {
        size: module.len() as u64,
        chunks: chunks.len(),
    };
    client
        .put(keys.meta(&hash).as_bytes(), json(&meta), 0)
        .await?;
    Ok((hash, true))
}

/// Point `live` at `record` in one transaction, which fails if the module
/// it names is not (wholly) stored.
pub async fn publish(
    client: &mut Client,
    keys: &Keys,
    record: &LiveRecord,
) -> Result<i64, StoreError> {
    let guarded = (keys.meta(&record.module), keys.live());
    put_guarded(client, guarded, json(record), (&record.module, "live")).await
}

/// The live record and the revision it was read at (`None`: nothing
/// published yet).
pub async fn live(
    client: &mut Client,
    keys: &Keys,
) -> Result<(Option<LiveRecord>, i64), StoreError> {
    read(client, &keys.live(), "live").await
}

/// The candidate on trial and the revision it was read at (`None`: none).
pub async fn candidate(
    client: &mut Client,
    keys: &Keys,
) -> Result<(Option<CandidateRecord>, i64), StoreError> {
    read(client, &keys.candidate(), "candidate").await
}

/// Point `candidate` at `record` in one transaction, which fails if the
/// module it names is not (wholly) stored.
pub async fn put_candidate(
    client: &mut Client,
    keys: &Keys,
    record: &CandidateRecord,
) -> Result<i64, StoreError> {
    let guarded = (keys.meta(&record.policy.module), keys.candidate());
    let what = (record.policy.module.as_str(), "candidate");
    put_guarded(client, guarded, json(record), what).await
}

/// Put `body` at `key` in one transaction guarded by `guard` (a module's
/// meta) existing; `what`: the module and the record, for the refusal.
async fn put_guarded(
    client: &mut Client,
    (guard, key): (String, String),
    body: Vec<u8>,
    (module, record): (&str, &str),
) -> Result<i64, StoreError> {
    let done = client
        .put_if_exists(guard.as_bytes(), key.as_bytes(), body)
        .await?;
    done.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "module {module} is not stored: {record} not changed"
        ))
    })
}

/// The record at `key` (`what` names it in an error) and the revision it
/// was read at.
async fn read<T: serde::de::DeserializeOwned>(
    client: &mut Client,
    key: &str,
    what: &str,
) -> Result<(Option<T>, i64), StoreError> {
    let got = client.get(key.as_bytes()).await?;
    let record = match got.values.first() {
        Some(value) => Some(parse::<T>(value, what)?),
        None => None,
    };
    Ok((record, got.revision))
}

/// No candidate on trial any more.
pub async fn delete_candidate(client: &mut Client, keys: &Keys) -> Result<(), StoreError> {
    client.delete(keys.candidate().as_bytes()).await?;
    Ok(())
}

/// The module `live` names, assembled from its chunks and checked against
/// its hash and size.
pub async fn download(
    client: &mut Client,
    keys: &Keys,
    live: &LiveRecord,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("module {}: {what}", live.module));
    if live.size > MAX_MODULE {
        return Err(corrupt(format!(
            "{} bytes, more than {MAX_MODULE}",
            live.size
        )));
    }
    let meta = client.get(keys.meta(&live.module).as_bytes()).await?;
    let meta: Meta = match meta.values.first() {
        Some(value) => parse(value, "meta")?,
        None => return Err(corrupt("not stored".into())),
    };
    // One chunk per request: an answer is capped, a module is not.
    let mut module = Vec::with_capacity(usize::try_from(meta.size.min(MAX_MODULE)).unwrap_or(0));
    for index in 0..meta.chunks {
        let chunk = client
            .get(keys.chunk(&live.module, index).as_bytes())
            .await?;
        let value = chunk
            .values
            .first()
            .ok_or_else(|| corrupt(format!("chunk {index} of {} is missing", meta.chunks)))?;
        module.extend_from_slice(value);
        if module.len() as u64 > live.size {
            return Err(corrupt("more bytes than its size".into()));
        }
    }
    // 18 MB of SHA-256 is milliseconds of CPU: off the runtime.
    let (module, hash) = tokio::task::spawn_blocking(move || {
        let hash = layout::hash(&module);
        (module, hash)
    })
    .await
    .map_err(|e| corrupt(e.to_string()))?;
    if module.len() as u64 != live.size || hash != live.module {
        return Err(corrupt("the stored bytes do not match its hash".into()));
    }
    Ok(module)
}

/// `P/instances/<id>`, kept alive with `lease`.
pub async fn put_instance(
    client: &mut Client,
    keys: &Keys,
    record: &layout::Instance,
    lease: i64,
) -> Result<(), StoreError> {
    let key = keys.instance(&record.id);
    client.put(key.as_bytes(), json(record), lease).await?;
    Ok(())
}

/// Every instance's record, and how many could not be read.
pub async fn instances(
    client: &mut Client,
    keys: &Keys,
) -> Result<(Vec<layout::Instance>, usize), StoreError> {
    let got = client.get_prefix(keys.instances().as_bytes()).await?;
    let parsed: Vec<Result<layout::Instance, _>> = got
        .values
        .iter()
        .map(|value| parse(value, "instance"))
        .collect();
    let unreadable = parsed.iter().filter(|r| r.is_err()).count();
    Ok((
        parsed.into_iter().filter_map(Result::ok).collect(),
        unreadable,
    ))
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain data: serialising cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what} record: {e}")))
}
