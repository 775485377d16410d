//! The process-wide Wasm engine: compiler settings and the linker with
//! limen's imports.
//!
//! Wall-clock deadlines need no thread: with fuel on, a guest that computes
//! yields to its caller every [`YIELD_EVERY`] units of fuel, and the caller
//! (`deadline::Deadline`) compares the clock with the deadline at each yield. A
//! guest that waits in a WASI call is bounded by a tokio timer. So nothing
//! wakes while no policy runs (an epoch ticker woke 1,000 times a second).

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::PolicyWorld;
use super::cache::ComponentCache;
use super::state::HostState;
use crate::policy::limit_table::LimitTable;

/// Fuel between two looks at the clock while a guest computes: ~0.1-0.3 ms
/// of compiled code, so a deadline is met within that; a decision of a
/// compiled guest (~50 k) never yields, a JavaScript one (~1 M) twice.
pub(crate) const YIELD_EVERY: u64 = 500_000;

/// Shared by every loaded policy (and, later, by hot-swapped ones).
#[derive(Clone)]
pub struct PolicyEngine {
    pub(crate) engine: wasmtime::Engine,
    /// Compiled components on disk; off unless [`with_cache`](Self::with_cache).
    pub(crate) cache: ComponentCache,
    pub(crate) linker: Arc<Linker<HostState>>,
    /// The limits policies `take` and `acquire`: the engine's, so they
    /// outlive every instance, swap and reload.
    pub(crate) limit_table: Arc<LimitTable>,
}

impl PolicyEngine {
    /// Build the engine (fuel on: it bounds a call, and yields to check the clock).
    pub fn new() -> Result<PolicyEngine, super::LoadError> {
        let setup = |e: wasmtime::Error| super::LoadError::Compile(format!("engine setup: {e:#}"));
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = wasmtime::Engine::new(&config).map_err(setup)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
        PolicyWorld::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(setup)?;
        Ok(PolicyEngine {
            engine,
            cache: ComponentCache::off(),
            linker: Arc::new(linker),
            limit_table: Arc::new(LimitTable::detached()),
        })
    }

    /// Keep policies' limits in `limit_table` (counted in its counters).
    pub fn with_limit_table(mut self, limit_table: Arc<LimitTable>) -> PolicyEngine {
        self.limit_table = limit_table;
        self
    }

    /// Keep compiled components in `dir` (see [`ComponentCache::at`]); `None`
    /// turns the cache off.
    pub fn with_cache(mut self, dir: Option<&std::path::Path>) -> PolicyEngine {
        self.cache = dir.map_or_else(ComponentCache::off, ComponentCache::at);
        self
    }
}
