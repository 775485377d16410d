//! Following the policy module on disk. The parent directory is watched, not
//! the file: a deploy that writes a new file and renames it over the old one
//! (the atomic way) replaces the inode a file watch would follow.
//!
//! Events are debounced: a change is reported once the file has been quiet
//! for [`QUIET`], so a copy in several writes triggers one swap. A writer
//! that pauses longer than that mid-file costs a refused (partial) candidate
//! and then the real swap, never a broken live policy; so the quiet period
//! is kept short, as it adds to every file-triggered swap.
//! The debounce is a few lines on a tokio timer rather than
//! `notify-debouncer-*`, which would add a thread per watch.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the file must be quiet before it is read.
pub(crate) const QUIET: Duration = Duration::from_millis(25);

/// A running watch; dropping it stops it.
pub(crate) struct Watch {
    _watcher: RecommendedWatcher,
    debounce: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Watch `module`; `changed` gets the time of the first event of each
    /// quiet-terminated burst (the trigger time a swap is measured from).
    pub(crate) fn start(
        module: &Path,
        changed: impl Fn(Instant) + Send + 'static,
    ) -> notify::Result<Watch> {
        let name: OsString = module
            .file_name()
            .ok_or_else(|| notify::Error::generic("the module path names no file"))?
            .to_owned();
        let dir = match module.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => ".".into(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                let ours = event
                    .paths
                    .iter()
                    .any(|p| p.file_name() == Some(name.as_os_str()));
                if ours && !matches!(event.kind, EventKind::Access(_)) {
                    let _ = tx.send(Instant::now());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        let debounce = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Absorb events until the file is quiet.
                while let Ok(Some(_)) = tokio::time::timeout(QUIET, rx.recv()).await {}
                changed(first);
            }
        });
        Ok(Watch {
            _watcher: watcher,
            debounce,
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.debounce.abort();
    }
}
