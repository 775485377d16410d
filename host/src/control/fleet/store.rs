//! etcd, as limen uses it: connect (TLS, user and password), store a module
//! in chunks, read it back verified, point `live` at it in one transaction.
//! Through etcd-client; every call bounded by the connection's timeout.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp,
};

use super::layout::{self, CHUNK, Keys, LiveRecord, MAX_MODULE, Meta};
use crate::state::config::SourceConfig;

/// Each request, and the connect, ends after this.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why an etcd exchange did not give what was needed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// etcd could not be reached or refused the request.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A file the options name (password, CA, client key) could not be read.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// What is stored is not what it should be (a missing chunk, a hash
    /// that does not match, a record that does not parse).
    #[error("{0}")]
    Corrupt(String),
}

/// Connect to `source`'s endpoints.
pub async fn connect(source: &SourceConfig) -> Result<Client, StoreError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| StoreError::File {
            path: path.display().to_string(),
            error,
        })
    };
    let mut options = ConnectOptions::new()
        .with_connect_timeout(TIMEOUT)
        .with_timeout(TIMEOUT)
        .with_keep_alive(Duration::from_secs(5), TIMEOUT)
        // etcd's auth tokens expire; without this each expiry is a reconnect.
        .with_auto_token_refresh(true);
    if let Some((user, file)) = &source.user {
        let password = String::from_utf8_lossy(&read(file)?).trim().to_owned();
        options = options.with_user(user.clone(), password);
    }
    if let Some(tls) = &source.tls {
        let mut config = TlsOptions::new();
        if let Some(ca) = &tls.ca {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(config);
    }
    let connect = Client::connect(&source.endpoints, Some(options));
    match tokio::time::timeout(TIMEOUT, connect).await {
        Ok(client) => Ok(client?),
        Err(_) => Err(StoreError::Corrupt(format!(
            "no etcd answered at {} within {}s",
            source.endpoints.join(", "),
            TIMEOUT.as_secs()
        ))),
    }
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
    if client.get(keys.meta(&hash), None).await?.count() > 0 {
        return Ok((hash, false));
    }
    let chunks: Vec<&[u8]> = module.chunks(CHUNK).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        client
            .put(keys.chunk(&hash, index), chunk.to_vec(), None)
            .await?;
    }
    let meta = Meta {
        size: module.len() as u64,
        chunks: chunks.len(),
    };
    client.put(keys.meta(&hash), json(&meta), None).await?;
    Ok((hash, true))
}

/// Point `live` at `record` in one transaction, which fails if the module
/// it names is not (wholly) stored.
pub async fn publish(
    client: &mut Client,
    keys: &Keys,
    record: &LiveRecord,
) -> Result<i64, StoreError> {
    let txn = Txn::new()
        .when([Compare::version(
            keys.meta(&record.module),
            CompareOp::Greater,
            0,
        )])
        .and_then([TxnOp::put(keys.live(), json(record), None)]);
    let done = client.txn(txn).await?;
    if !done.succeeded() {
        return Err(StoreError::Corrupt(format!(
            "module {} is not stored: live not changed",
            record.module
        )));
    }
    Ok(done.header().map_or(0, |h| h.revision()))
}

/// The live record and the revision it was read at (`None`: nothing
/// published yet).
pub async fn live(
    client: &mut Client,
    keys: &Keys,
) -> Result<(Option<LiveRecord>, i64), StoreError> {
    let got = client.get(keys.live(), None).await?;
    let revision = got.header().map_or(0, |h| h.revision());
    let record = match got.kvs().first() {
        Some(kv) => Some(parse::<LiveRecord>(kv.value(), "live")?),
        None => None,
    };
    Ok((record, revision))
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
    let meta = client.get(keys.meta(&live.module), None).await?;
    let meta: Meta = match meta.kvs().first() {
        Some(kv) => parse(kv.value(), "meta")?,
        None => return Err(corrupt("not stored".into())),
    };
    // One chunk per request: a response is capped (gRPC's 4 MiB), a module
    // is not.
    let mut module = Vec::with_capacity(usize::try_from(meta.size.min(MAX_MODULE)).unwrap_or(0));
    for index in 0..meta.chunks {
        let chunk = client.get(keys.chunk(&live.module, index), None).await?;
        let kv = chunk
            .kvs()
            .first()
            .ok_or_else(|| corrupt(format!("chunk {index} of {} is missing", meta.chunks)))?;
        module.extend_from_slice(kv.value());
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
    let options = PutOptions::new().with_lease(lease);
    client
        .put(keys.instance(&record.id), json(record), Some(options))
        .await?;
    Ok(())
}

/// Every instance's record, and how many could not be read.
pub async fn instances(
    client: &mut Client,
    keys: &Keys,
) -> Result<(Vec<layout::Instance>, usize), StoreError> {
    let got = client
        .get(keys.instances(), Some(GetOptions::new().with_prefix()))
        .await?;
    let parsed: Vec<Result<layout::Instance, _>> = got
        .kvs()
        .iter()
        .map(|kv| parse(kv.value(), "instance"))
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
