//! The process-wide Wasm engine: compiler settings, the linker with limen's
//! imports, and the epoch ticker that enforces wall-clock deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::PolicyWorld;
use super::cache::ComponentCache;
use super::state::HostState;

/// Resolution of policy deadlines: the epoch advances this often.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Shared by every loaded policy (and, later, by hot-swapped ones).
#[derive(Clone)]
pub struct PolicyEngine {
    pub(crate) engine: wasmtime::Engine,
    /// Compiled components on disk; off unless [`with_cache`](Self::with_cache).
    pub(crate) cache: ComponentCache,
    pub(crate) linker: Arc<Linker<HostState>>,
    _ticker: Arc<EpochTicker>,
}

impl PolicyEngine {
    /// Build the engine (fuel and epoch interruption on) and start its ticker.
    pub fn new() -> Result<PolicyEngine, super::LoadError> {
        let setup = |e: wasmtime::Error| super::LoadError::Compile(format!("engine setup: {e:#}"));
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = wasmtime::Engine::new(&config).map_err(setup)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
        PolicyWorld::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| super::LoadError::Compile(format!("epoch ticker thread: {e}")))?;
        Ok(PolicyEngine {
            engine,
            cache: ComponentCache::off(),
            linker: Arc::new(linker),
            _ticker: Arc::new(ticker),
        })
    }

    /// Keep compiled components in `dir` (see [`ComponentCache::at`]); `None`
    /// turns the cache off.
    pub fn with_cache(mut self, dir: Option<&std::path::Path>) -> PolicyEngine {
        self.cache = dir.map_or_else(ComponentCache::off, ComponentCache::at);
        self
    }

    /// Epoch ticks that cover `timeout`: one extra, because the first tick may
    /// land right after the deadline is set.
    pub(crate) fn ticks_for(timeout: Duration) -> u64 {
        let tick = EPOCH_TICK.as_nanos().max(1);
        u64::try_from(timeout.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on its own thread, so a
/// policy stuck in a loop is interrupted even though calls run synchronously
/// on a runtime worker. Stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("limen-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
