//! The admin endpoint: a unix socket (mode 0600) or a TCP address, serving
//! one request per connection (see `protocol`). Swaps go to the control
//! task's queue; `status` is read from the live state directly, so it
//! answers even while a long compile runs.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

use super::ControlHandle;
use super::protocol::{Answer, Envelope, MAX_LINE, Request};
use crate::config::{AdminConfig, AdminEndpoint};
use crate::listener::Serve;
use crate::policy::MAX_MODULE_BYTES;

/// Time a client has to send its whole request (an 18 MB module included).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Admin connections served at once (each may buffer a module).
const MAX_SESSIONS: usize = 4;

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
            AdminEndpoint::Tcp(addr) if token.is_none() => {
                tracing::warn!(
                    %addr,
                    "admin endpoint on TCP without token_file: any local user can swap the policy"
                );
                Socket::Tcp(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| fail(e.to_string()))?,
                )
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
    pub(crate) async fn serve(self, handle: ControlHandle, serve: Arc<Serve>) {
        // A permit is taken before accepting: beyond the limit, clients wait
        // in the backlog rather than being turned away.
        let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
        let token: Option<Arc<str>> = self.token.map(Arc::from);
        loop {
            let permit = tokio::select! {
                () = serve.stop.cancelled() => break,
                permit = sessions.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                () = serve.stop.cancelled() => break,
                accepted = accept(&self.socket) => accepted,
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!("admin accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (handle, serve, token) = (handle.clone(), serve.clone(), token.clone());
            tokio::spawn(async move {
                session(stream, token.as_deref(), &handle, &serve).await;
                drop(permit);
            });
        }
        if let Socket::Unix(_, path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
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

async fn session(stream: Stream, token: Option<&str>, handle: &ControlHandle, serve: &Serve) {
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
            answer(s, refused, token, handle, serve).await
        }
        Stream::Tcp(s) => answer(s, None, token, handle, serve).await,
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    refused: Option<String>,
    token: Option<&str>,
    handle: &ControlHandle,
    serve: &Serve,
) {
    let mut reader = BufReader::new(stream);
    let answer = match refused {
        Some(error) => denied(error),
        None => match tokio::time::timeout(READ_TIMEOUT, request(&mut reader, token)).await {
            Err(_) => denied("request not received in time".into()),
            Ok(Err(error)) => denied(error),
            Ok(Ok((Request::Status, _))) => Answer::Status(super::status(serve)),
            Ok(Ok((Request::Swap { config_json, .. }, module))) => {
                handle.swap(module.into(), config_json).await
            }
        },
    };
    let mut line = serde_json::to_vec(&answer).unwrap_or_default();
    line.push(b'\n');
    let mut stream = reader.into_inner();
    let _ = stream.write_all(&line).await;
    let _ = stream.shutdown().await;
}

fn denied(error: String) -> Answer {
    tracing::warn!("admin request denied: {error}");
    Answer::Denied { error }
}

/// Read one request: the line, the token check, then the module (never read
/// before the token is checked).
async fn request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    token: Option<&str>,
) -> Result<(Request, Vec<u8>), String> {
    let mut line = Vec::new();
    (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if line.last() != Some(&b'\n') {
        return Err("request line missing or too long".into());
    }
    let envelope: Envelope =
        serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}"))?;
    let module_len = match &envelope.request {
        Request::Swap { module_len, .. } => *module_len,
        Request::Status => 0,
    };
    if module_len > MAX_MODULE_BYTES {
        return Err(format!(
            "module of {module_len} bytes, more than {MAX_MODULE_BYTES}"
        ));
    }
    if let Some(expected) = token {
        let given = envelope.token.as_deref().unwrap_or("");
        if !same(given.as_bytes(), expected.as_bytes()) {
            // Read and discard the module, so the client (still writing it)
            // gets this answer instead of a reset connection.
            let mut rest = (&mut *reader).take(module_len as u64);
            let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
            return Err("bad or missing token".into());
        }
    }
    let mut module = Vec::new();
    if let Request::Swap { module_len, .. } = &envelope.request {
        module.resize(*module_len, 0);
        reader
            .read_exact(&mut module)
            .await
            .map_err(|e| format!("module not received whole: {e}"))?;
    }
    Ok((envelope.request, module))
}

/// Compare without an early exit, so timing does not reveal a prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
