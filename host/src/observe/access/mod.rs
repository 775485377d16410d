//! The access log: one line per finished connection, written by a thread of
//! its own. A connection pushes its [`Record`] onto a bounded lock-free queue
//! and never waits: when the writer falls behind (a slow disk, a blocked
//! stdout) the line is dropped and counted in `limen_access_log_dropped_total`.
//! The writer polls the queue (every 10 ms when it is empty) rather than
//! being woken per line, so a connection never touches a lock or a futex.
//!
//! Each configuration generation opens its own log (so a reload reopens the
//! file, which is what log rotation needs); the writer ends, flushing, when
//! the last connection of its generation has finished.

mod record;

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use prometheus::IntCounter;

use crate::observe::{AccessLogConfig, AccessLogFormat, AccessLogSink};
pub(crate) use record::{ActionTaken, Record};

/// How long the writer sleeps when the queue is empty: the most a line waits.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct AccessLog {
    /// Shared with the writer, which ends when it holds the last reference
    /// (or is told to close) and the queue is empty.
    queue: Arc<Queue>,
    dropped: IntCounter,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

struct Queue {
    lines: ArrayQueue<Record>,
    closing: AtomicBool,
}

impl AccessLog {
    /// Open the sink and start its writer. Blocking (it may create a file):
    /// call it off the runtime's workers.
    pub(crate) fn open(config: &AccessLogConfig, dropped: IntCounter) -> io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match &config.sink {
            AccessLogSink::Stdout => Box::new(io::stdout()),
            AccessLogSink::File(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?,
            ),
        };
        let queue = Arc::new(Queue {
            lines: ArrayQueue::new(config.buffer),
            closing: AtomicBool::new(false),
        });
        let (theirs, format) = (queue.clone(), config.format);
        let writer = std::thread::Builder::new()
            .name("limen-access-log".into())
            .spawn(move || write_lines(&theirs, BufWriter::new(out), format))?;
        Ok(AccessLog {
            queue,
            dropped,
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    /// Queue a line; never waits.
    pub(crate) fn send(&self, record: Record) {
        if self.queue.lines.push(record).is_err() {
            self.dropped.inc();
        }
    }

    /// At shutdown, once every connection has finished: write what is
    /// queued, flush, and wait for the writer to end.
    pub(crate) async fn close(&self) {
        self.queue.closing.store(true, Ordering::Release);
        // The lock only guards the handle; nothing else takes it.
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

/// Write lines as they come, flushing whenever the queue runs dry, until
/// every sender is gone and the queue is empty.
fn write_lines(
    queue: &Arc<Queue>,
    mut out: BufWriter<Box<dyn Write + Send>>,
    format: AccessLogFormat,
) {
    let mut line = String::with_capacity(512);
    let mut failing = false;
    loop {
        let mut wrote = false;
        while let Some(record) = queue.lines.pop() {
            line.clear();
            match format {
                AccessLogFormat::Text => record.text(&mut line),
                AccessLogFormat::Json => record.json(&mut line),
            }
            line.push('\n');
            report(&mut failing, out.write_all(line.as_bytes()));
            wrote = true;
        }
        if wrote {
            report(&mut failing, out.flush());
        }
        // Checked after draining: a sender pushes before it can be dropped.
        let unused = Arc::strong_count(queue) == 1 || queue.closing.load(Ordering::Acquire);
        if unused && queue.lines.is_empty() {
            break;
        }
        std::thread::sleep(IDLE_POLL);
    }
    let _ = out.flush();
}

/// Log the first failure of a run of failed writes, and the recovery.
fn report(failing: &mut bool, result: io::Result<()>) {
    match (result, *failing) {
        (Err(error), false) => {
            tracing::warn!(target: "tls_sni", %error, "access_log.write_failed");
            *failing = true;
        }
        (Ok(()), true) => {
            tracing::info!(target: "tls_sni", "access_log.write_recovered");
            *failing = false;
        }
        _ => {}
    }
}
