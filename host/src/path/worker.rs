//! Workers: one thread per core, each a current-thread tokio runtime.
//!
//! Every listener has one `SO_REUSEPORT` socket per worker, so the kernel
//! spreads connections over the workers and a connection lives its whole
//! life on the worker that accepted it: its task, its timers, its policy
//! instance (the worker binds its own pool: `policy::bind_thread`) and its splice pipes
//! never cross a thread. Control, admin and metrics run on the main runtime.

use std::cell::Cell;
use std::future::Future;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

thread_local! {
    /// The worker this thread is; 0 on any other thread (control, tools).
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running the caller (0 off the workers).
pub fn index() -> usize {
    INDEX.get()
}

/// How long a worker's runtime waits, once the drain is over, for blocking
/// work still running (a name lookup of a force-closed connection).
const BLOCKING_GRACE: Duration = Duration::from_millis(100);

/// How often a worker's timer driver wakes with nothing to do.
const PACEMAKER: Duration = Duration::from_millis(250);

/// Keep a timer due within [`PACEMAKER`] on the worker at all times.
///
/// tokio writes its runtime's eventfd whenever a timer is set earlier than
/// the time the driver last planned to wake: with no timer at all, the
/// first one a connection sets (its hello's deadline, its connect's) costs
/// a `write` and an extra wake-up, once per connection when connections
/// come one at a time. The path's timers are 500 ms or longer, so none is
/// ever earlier than this one: four idle wake-ups a second buy that.
async fn pacemaker() {
    loop {
        tokio::time::sleep(PACEMAKER).await;
    }
}

/// The running workers.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Cancelled when every worker may exit (after the drain).
    exit: CancellationToken,
    /// Taken once, by `stop` (shutdown only: no lock on the path).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// Start `count` workers (at least one).
    pub(crate) fn start(count: usize) -> std::io::Result<Workers> {
        let mut workers = Workers {
            handles: Vec::with_capacity(count),
            exit: CancellationToken::new(),
            threads: Mutex::new(Vec::with_capacity(count)),
        };
        // On an error, dropping `workers` lets the threads started so far exit.
        for index in 0..count.max(1) {
            let exit = workers.exit.clone();
            let (tx, rx) = mpsc::channel();
            // The runtime is built on its own thread, so that no failure
            // drops a runtime inside the caller's (async) context.
            let thread = std::thread::Builder::new()
                .name(format!("limen-worker-{index}"))
                .spawn(move || {
                    INDEX.set(index);
                    crate::policy::bind_thread(index);
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => return drop(tx.send(Err(error))),
                    };
                    let _ = tx.send(Ok(runtime.handle().clone()));
                    // Tasks spawned through the handle run while this
                    // thread is inside `block_on`: until the drain is over.
                    runtime.block_on(async {
                        tokio::select! {
                            () = exit.cancelled() => {}
                            () = pacemaker() => {}
                        }
                    });
                    runtime.shutdown_timeout(BLOCKING_GRACE);
                })?;
            let handle = rx
                .recv()
                .map_err(|_| std::io::Error::other("worker thread ended at start"))??;
            workers.handles.push(handle);
            if let Ok(threads) = workers.threads.get_mut() {
                threads.push(thread);
            }
        }
        Ok(workers)
    }

    /// How many workers run.
    pub(crate) fn count(&self) -> usize {
        self.handles.len()
    }

    /// Run `task` on worker `index`.
    pub(crate) fn spawn<F>(&self, index: usize, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // An upgrade may hand over more sockets than this limen has
        // workers: they share them in turn.
        drop(self.handles[index % self.handles.len()].spawn(task));
    }

    /// Let every worker exit, without waiting for them.
    pub(crate) fn release(&self) {
        self.exit.cancel();
    }

    /// Let every worker exit and wait for their threads (off the runtime:
    /// joining blocks).
    pub(crate) async fn stop(&self) {
        self.exit.cancel();
        let threads = match self.threads.lock() {
            Ok(mut threads) => std::mem::take(&mut *threads),
            Err(_) => return,
        };
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl Drop for Workers {
    /// A server dropped without `run` (a test, a failed start): the threads
    /// exit by themselves, dropping whatever their runtimes still hold.
    fn drop(&mut self) {
        self.exit.cancel();
    }
}
