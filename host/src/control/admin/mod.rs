//! The admin endpoint: a unix socket (mode 0600, peer uid checked) or a TCP
//! address (token required), serving one request per connection (see
//! `protocol`). A connection must send its request line promptly, and idle
//! ones are capped (see `gate`). Swaps go to the control task's queue;
//! `status` is read from the live state directly, so it answers even while a
//! long compile runs.

pub mod client;
mod gate;
pub mod protocol;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::ControlHandle;
use super::running::Running;
use crate::observe::log_limit::LogLimit;
use crate::state::config::{AdminConfig, AdminEndpoint};
use gate::{Gate, LINE_TIMEOUT};
use protocol::{Answer, Envelope, MAX_LINE, Request, Status};

/// Time an authorised client has to send its module (18 MB for a Python
/// guest).
const MODULE_TIMEOUT: Duration = Duration::from_secs(30);

/// Modules being received at once (each is buffered whole).
const MAX_UPLOADS: usize = 4;

/// Shortest token accepted: guessing must not be practical.
const MIN_TOKEN: usize = 16;

enum Socket {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

/// The admin endpoint could not be opened, or its token read.
#[derive(Debug, thiserror::Error)]
#[error("E011 admin endpoint {endpoint}: {reason}")]
pub struct AdminError {
    /// The socket path or address.
    pub endpoint: String,
    /// Why.
    pub reason: String,
}

impl AdminError {
    /// The code that starts the message.
    pub fn code(&self) -> &'static str {
        "E011"
    }
}

/// A bound admin endpoint and the token it requires.
pub(crate) struct Endpoint {
    socket: Socket,
    token: Option<String>,
}

impl Endpoint {
    /// Bind the endpoint and read the token file.
    pub(crate) async fn open(config: &AdminConfig) -> Result<Endpoint, AdminError> {
        let fail = |reason: String| AdminError {
            endpoint: match &config.endpoint {
                AdminEndpoint::Unix(path) => path.display().to_string(),
                AdminEndpoint::Tcp(addr) => addr.to_string(),
            },
            reason,
        };
        let token = match &config.token_file {
            None => None,
            Some(file) => {
                let meta = std::fs::metadata(file)
                    .map_err(|e| fail(format!("token file {}: {e}", file.display())))?;
                if meta.mode() & 0o077 != 0 {
                    return Err(fail(format!(
                        "token file {} is readable by other users (chmod 600)",
                        file.display()
                    )));
                }
                let text = std::fs::read_to_string(file)
                    .map_err(|e| fail(format!("token file {}: {e}", file.display())))?;
                let token = text.trim().to_owned();
                if token.len() < MIN_TOKEN {
                    return Err(fail(format!(
                        "token in {} is shorter than {MIN_TOKEN} characters",
                        file.display()
                    )));
                }
                Some(token)
            }
        };
        let socket = match &config.endpoint {
            _ if let Some(socket) = handed_over(&config.endpoint) => socket,
            // The config refuses TCP without a token; checked again here
            // because this is what an unauthenticated swap would open.
            AdminEndpoint::Tcp(_) if token.is_none() => {
                return Err(fail("TCP needs token_file".into()));
            }
            AdminEndpoint::Tcp(addr) => Socket::Tcp(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            ),
            AdminEndpoint::Unix(path) => {
                // A socket file left by a limen that died is removed; one a
                // live limen answers on is not taken over, and a path that is
                // not a socket (a typo naming a real file) is never deleted.
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(fail("another process is listening on it".into()));
                }
                match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.file_type().is_socket() => {
                        let _ = std::fs::remove_file(path);
                    }
                    Ok(_) => return Err(fail("exists and is not a socket".into())),
                    Err(_) => {}
                }
                let listener = UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail(format!("chmod 0600: {e}")))?;
                Socket::Unix(listener, path.clone())
            }
        };
        Ok(Endpoint { socket, token })
    }

    /// Answer requests until shutdown; a unix socket file is removed then.
    pub(crate) async fn serve(self, handle: ControlHandle, running: Arc<Running>) {
        let shared = Arc::new(Shared {
            token: self.token,
            gate: Arc::new(Gate::default()),
            uploads: Semaphore::new(MAX_UPLOADS),
            handle,
            running: running.clone(),
        });
        loop {
            let accepted = tokio::select! {
                () = running.serve.stop.cancelled() => break,
                accepted = accept(&self.socket) => accepted,
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    static FAILED: LogLimit = LogLimit::new(1);
                    if let Some(suppressed) = FAILED.allow() {
                        tracing::warn!(suppressed, "admin accept failed: {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Admitted before the task starts, so the cap holds however
            // fast connections arrive.
            let waiting = shared.gate.admit();
            let shared = shared.clone();
            tokio::spawn(async move { session(stream, waiting, &shared).await });
        }
        // Handed over, the socket (file and all) is the new process's.
        if let Socket::Unix(_, path) = &self.socket
            && !running.serve.handed_over.is_cancelled()
        {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Its listening socket, duplicated (for an upgrade).
    pub(crate) fn socket(&self) -> std::io::Result<OwnedFd> {
        match &self.socket {
            Socket::Unix(listener, _) => listener.as_fd().try_clone_to_owned(),
            Socket::Tcp(listener) => listener.as_fd().try_clone_to_owned(),
        }
    }
}

/// The endpoint the limen this one upgrades handed over, if it is the one
/// configured (else it is closed, and the configured one opened).
fn handed_over(endpoint: &AdminEndpoint) -> Option<Socket> {
    let socket = super::activation::take_named(super::activation::ADMIN)?;
    socket.set_nonblocking(true).ok()?;
    let local = socket.local_addr().ok()?;
    match endpoint {
        AdminEndpoint::Unix(path) if local.as_pathname() == Some(path.as_path()) => {
            let listener = std::os::unix::net::UnixListener::from(OwnedFd::from(socket));
            let listener = UnixListener::from_std(listener).ok()?;
            Some(Socket::Unix(listener, path.clone()))
        }
        AdminEndpoint::Tcp(addr) if local.as_socket() == Some(*addr) => {
            let listener = TcpListener::from_std(socket.into()).ok()?;
            Some(Socket::Tcp(listener))
        }
        _ => None,
    }
}

/// The live state, as `limen status` shows it.
fn status(running: &Running) -> Status {
    let snapshot = running.serve.live.load();
    let (policy, generation) = (&snapshot.policy, &snapshot.generation);
    let version = policy.version();
    Status {
        version: version.to_string(),
        module_sha256: version.module.to_hex(),
        loaded_at: humantime::format_rfc3339_millis(version.loaded_at).to_string(),
        module_path: policy.settings().module.display().to_string(),
        rules: policy.routes(),
        listeners: generation
            .listeners
            .iter()
            .map(|(name, addr)| (name.to_string(), addr.to_string()))
            .collect(),
        generation: generation.number,
        pid: std::process::id(),
        candidate: snapshot.trial.as_deref().map(candidate),
        rolled_back: running.rolled_back.lock().map_or(None, |r| r.clone()),
        binary: super::running::binary_version(),
    }
}

/// A candidate on trial, as `limen status` shows it.
fn candidate(trial: &crate::state::trial::Trial) -> protocol::Candidate {
    let [same, different, failed, dropped] = trial.tally.counts();
    let [canary_decided, canary_failed, ..] = trial.tally.canary();
    protocol::Candidate {
        version: trial.policy.version().to_string(),
        mode: trial.mode(),
        rules: trial.policy.routes(),
        canary_decided,
        canary_failed,
        same,
        different,
        failed,
        dropped,
        last: trial.tally.last(),
    }
}

/// What every admin session reads.
struct Shared {
    token: Option<String>,
    gate: Arc<Gate>,
    uploads: Semaphore,
    handle: ControlHandle,
    running: Arc<Running>,
}

enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(socket: &Socket) -> std::io::Result<Stream> {
    match socket {
        Socket::Unix(l, _) => Ok(Stream::Unix(l.accept().await?.0)),
        Socket::Tcp(l) => Ok(Stream::Tcp(l.accept().await?.0)),
    }
}

async fn session(stream: Stream, waiting: gate::Waiting, shared: &Shared) {
    match stream {
        Stream::Unix(s) => {
            // The socket is 0600, but it is chmod-ed just after bind: also
            // check who is calling (limen's own user, or root).
            let own = rustix::process::geteuid().as_raw();
            let refused = match s.peer_cred() {
                Ok(cred) if cred.uid() == own || cred.uid() == 0 => None,
                Ok(cred) => Some(format!(
                    "unix peer uid {} is not limen's ({own}) or root",
                    cred.uid()
                )),
                Err(error) => Some(format!("unix peer credentials unknown: {error}")),
            };
            answer(s, refused, waiting, shared).await
        }
        Stream::Tcp(s) => answer(s, None, waiting, shared).await,
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    refused: Option<String>,
    waiting: gate::Waiting,
    shared: &Shared,
) {
    let mut reader = BufReader::new(stream);
    let answer = match refused {
        Some(error) => denied(error),
        None => match authorised(&mut reader, waiting, shared.token.as_deref()).await {
            Err(error) => denied(error),
            Ok(Request::Status) => Answer::Status(Box::new(status(&shared.running))),
            Ok(Request::Upgrade) => shared.handle.upgrade().await,
            Ok(Request::Renew { certificate }) => match shared.running.acme.renew(&certificate) {
                Ok(()) => Answer::Renewing { certificate },
                Err(error) => Answer::Refused {
                    code: error.code().into(),
                    error: error.to_string(),
                    live: shared.running.serve.live.policy().version().to_string(),
                },
            },
            Ok(Request::Swap {
                module_len,
                config_json,
                shadow,
                canary,
            }) => match module(&mut reader, module_len, &shared.uploads).await {
                Ok(module) if shadow || canary.is_some() => {
                    let mode = (shadow, canary);
                    let handle = &shared.handle;
                    handle.try_candidate(module.into(), config_json, mode).await
                }
                Ok(module) => shared.handle.swap(module.into(), config_json).await,
                Err(error) => denied(error),
            },
            Ok(Request::Promote) => shared.handle.promote().await,
            Ok(Request::Abort) => shared.handle.abort().await,
        },
    };
    let mut line = serde_json::to_vec(&answer).unwrap_or_default();
    line.push(b'\n');
    let mut stream = reader.into_inner();
    let _ = tokio::time::timeout(LINE_TIMEOUT, async {
        let _ = stream.write_all(&line).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

fn denied(error: String) -> Answer {
    // Any local user can make these (over TCP): logged a few a second.
    static DENIED: LogLimit = LogLimit::new(5);
    if let Some(suppressed) = DENIED.allow() {
        tracing::warn!(suppressed, "admin request denied: {error}");
    }
    Answer::Denied { error }
}

/// The request line, read within `LINE_TIMEOUT` unless a newer connection
/// evicts this one first, and its token checked. The connection stops
/// counting as waiting once this returns.
async fn authorised<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    waiting: gate::Waiting,
    token: Option<&str>,
) -> Result<Request, String> {
    let evicted: &CancellationToken = &waiting.evicted;
    let line = tokio::select! {
        () = evicted.cancelled() => {
            return Err("evicted: too many admin connections waiting to send a request".into());
        }
        line = tokio::time::timeout(LINE_TIMEOUT, request_line(reader)) => match line {
            Err(_) => return Err("request line not received in time".into()),
            Ok(line) => line?,
        },
    };
    drop(waiting);
    let envelope = Envelope::decode(&line)?;
    if let Some(expected) = token {
        let given = envelope.token.as_deref().unwrap_or("");
        if !same(given.as_bytes(), expected.as_bytes()) {
            // Read and discard the module (briefly), so the client still
            // writing it gets this answer instead of a reset connection.
            if let Request::Swap { module_len, .. } = envelope.request {
                let mut rest = (&mut *reader).take(module_len as u64);
                let mut sink = tokio::io::sink();
                let discard = tokio::io::copy(&mut rest, &mut sink);
                let _ = tokio::time::timeout(LINE_TIMEOUT, discard).await;
            }
            return Err("bad or missing token".into());
        }
    }
    Ok(envelope.request)
}

async fn request_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if line.last() != Some(&b'\n') {
        return Err("request line missing or too long".into());
    }
    Ok(line)
}

/// An authorised swap's module: `MAX_UPLOADS` at once, each within
/// `MODULE_TIMEOUT`.
async fn module<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    module_len: usize,
    uploads: &Semaphore,
) -> Result<Vec<u8>, String> {
    let _permit = uploads.acquire().await.map_err(|e| e.to_string())?;
    let mut module = vec![0; module_len];
    match tokio::time::timeout(MODULE_TIMEOUT, reader.read_exact(&mut module)).await {
        Err(_) => Err("module not received in time".into()),
        Ok(Err(error)) => Err(format!("module not received whole: {error}")),
        Ok(Ok(_)) => Ok(module),
    }
}

/// Compare without an early exit, so timing does not reveal a prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
