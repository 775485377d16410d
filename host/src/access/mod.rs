//! The access log: one line per finished connection, written by a thread of
//! its own. A connection hands its [`Record`] over a bounded channel and never
//! waits: when the writer falls behind (a slow disk, a blocked stdout) the
//! line is dropped and counted in `limen_access_log_dropped_total`.
//!
//! Each configuration generation opens its own log (so a reload reopens the
//! file, which is what log rotation needs); the writer ends, flushing, when
//! the last connection of its generation has finished.

mod record;

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use prometheus::IntCounter;

use crate::config::{AccessLogConfig, AccessLogFormat, AccessLogSink};
pub(crate) use record::{Action, Record};

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct AccessLog {
    lines: SyncSender<Record>,
    dropped: IntCounter,
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
        let (lines, rx) = sync_channel(config.buffer);
        let format = config.format;
        std::thread::Builder::new()
            .name("limen-access-log".into())
            .spawn(move || write_lines(&rx, BufWriter::new(out), format))?;
        Ok(AccessLog { lines, dropped })
    }

    /// Queue a line; never waits.
    pub(crate) fn send(&self, record: Record) {
        if self.lines.try_send(record).is_err() {
            self.dropped.inc();
        }
    }
}

/// Write lines as they come, flushing whenever the queue runs dry, until
/// every sender is gone.
fn write_lines(
    rx: &Receiver<Record>,
    mut out: BufWriter<Box<dyn Write + Send>>,
    format: AccessLogFormat,
) {
    let mut line = String::with_capacity(512);
    let mut failing = false;
    while let Ok(mut record) = rx.recv() {
        loop {
            line.clear();
            match format {
                AccessLogFormat::Text => record.text(&mut line),
                AccessLogFormat::Json => record.json(&mut line),
            }
            line.push('\n');
            let written = out.write_all(line.as_bytes());
            report(&mut failing, written);
            record = match rx.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            };
        }
        let flushed = out.flush();
        report(&mut failing, flushed);
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
