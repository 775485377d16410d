//! A loaded policy: the compiled component, linked once, and a pool of warm
//! instances reused across connections.
//!
//! A `route` call on a warm instance costs about a microsecond; a fresh
//! instance costs tens (and would re-run `init`, which may compile regexes),
//! so instances live as long as they behave. An instance that fails a call is
//! dropped: after a trap its state cannot be trusted.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use wasmtime::component::Resource;
use wasmtime::{Store, Trap};

use super::bindings::{HelloRef, PolicyPre, PolicyWorld};
use super::deadline::Deadline;
use super::engine::{PolicyEngine, YIELD_EVERY};
use super::settings::{INIT_BUDGET_FACTOR, PolicyConfig};
use super::state::HostState;
use super::version::PolicyVersion;
use super::{CallError, Connection, LoadError, convert};
use crate::decision::{Decision, Rule};
use crate::hello::HelloSummary;
use crate::policy::limit_table::{Held, LimitTable};

/// A policy ready to decide.
pub struct Policy {
    pub(super) engine: PolicyEngine,
    pub(super) pre: PolicyPre<HostState>,
    pub(super) settings: PolicyConfig,
    /// Warm instances, one pool per worker: a worker takes and returns
    /// instances only in its own, so no cache line crosses cores.
    pub(super) idle: Box<[ArrayQueue<Instance>]>,
    pub(super) version: PolicyVersion,
    /// The too-tight-memory warning was logged (once per policy).
    pub(super) memory_warned: AtomicBool,
    /// How many rules its `init` said it holds (`report-routes`), once an
    /// instance was made.
    pub(super) routes: std::sync::OnceLock<u32>,
}

/// One instance and the store it lives in.
pub(super) struct Instance {
    store: Store<HostState>,
    world: PolicyWorld,
}

/// A decision and what it cost.
pub struct Verdict {
    /// What the policy decided.
    pub decision: Decision,
    /// Fuel the call consumed.
    pub fuel_used: u64,
    /// The kind of rule the policy said decided it, if it said.
    pub rule: Option<Rule>,
    /// The instance came within an eighth of the memory limit, so it was
    /// dropped after this call (the next call gets a fresh one).
    pub recycled: bool,
    /// Concurrency slots the call acquired, for the connection to hold.
    pub held: Held,
}

thread_local! {
    /// The instance pool calls made on this thread use: each worker thread
    /// binds its own at start (`bind_thread`); any other thread uses pool 0.
    static POOL: Cell<usize> = const { Cell::new(0) };
}

/// Make every policy call on this thread use instance pool `index` (one
/// pool per worker, so an instance never crosses threads). The worker
/// calls it once, as its thread starts.
pub(crate) fn bind_thread(index: usize) {
    POOL.set(index);
}

impl Policy {
    /// Ask the policy about one connection.
    ///
    /// The guest runs on a fiber on the calling task, bounded by the fuel
    /// budget and the deadline; it only yields if it calls a WASI function
    /// that waits. Only when every warm instance is busy or was dropped after
    /// a failure does this instantiate one inline.
    pub async fn decide(
        &self,
        conn: &Connection,
        hello: Option<&Arc<HelloSummary>>,
    ) -> Result<Verdict, CallError> {
        self.decide_in((POOL.get(), None), conn, hello).await
    }

    /// [`decide`](Self::decide) with limits apart from the engine's: what
    /// the call takes or acquires comes from `limits` (a shadow's own).
    pub async fn decide_apart(
        &self,
        limits: &Arc<LimitTable>,
        conn: &Connection,
        hello: Option<&Arc<HelloSummary>>,
    ) -> Result<Verdict, CallError> {
        self.decide_in((POOL.get(), Some(limits)), conn, hello)
            .await
    }

    /// [`decide`](Self::decide) with an instance of worker `pool`'s pool
    /// (the warm-up visits every pool from the control thread), and the
    /// limits apart, if any.
    pub(super) async fn decide_in(
        &self,
        (pool, apart): (usize, Option<&Arc<LimitTable>>),
        conn: &Connection,
        hello: Option<&Arc<HelloSummary>>,
    ) -> Result<Verdict, CallError> {
        let idle = &self.idle[pool % self.idle.len()];
        let mut instance = match idle.pop() {
            Some(instance) => instance,
            None => self.instantiate().await.map_err(CallError::Init)?,
        };
        let conn = convert::connection(conn);
        // The guest reads the hello through getters on this borrow, which
        // the component model ends with the call.
        instance.store.data_mut().hello = hello.cloned();
        instance.store.data_mut().apart = apart.cloned();
        let handle = hello.map(|_| Resource::<HelloRef>::new_borrow(0));
        let budget = self.settings.fuel;
        let deadline = Instant::now() + self.settings.timeout;
        arm(&mut instance.store, budget, deadline);
        let call = instance
            .world
            .call_route(&mut instance.store, &conn, handle);
        let result = match within(deadline, call).await {
            Some(result) => result,
            None => return Err(CallError::Deadline),
        };
        instance.store.data_mut().hello = None;
        // Nor does a warm instance keep a scratch table alive.
        instance.store.data_mut().apart = None;
        // Slots a failed call took are given back here, with the guard.
        let held = std::mem::take(&mut instance.store.data_mut().held);
        let fuel_used = budget.saturating_sub(instance.store.get_fuel().unwrap_or(0));
        match result {
            Ok(decision) => {
                let rule = instance.store.data().rule.map(convert::rule);
                let recycled = instance.store.data().near_memory_limit();
                if !recycled {
                    // A full pool means more instances exist than are needed: drop this one.
                    let _ = idle.push(instance);
                }
                let decision = convert::decision(decision).map_err(CallError::InvalidDecision)?;
                Ok(Verdict {
                    decision,
                    fuel_used,
                    rule,
                    recycled,
                    held,
                })
            }
            Err(error) => Err(classify(&error, instance.store.data())),
        }
    }

    /// Top every worker's pool up to `settings.instances` warm instances.
    pub(super) async fn fill(&self) -> Result<(), LoadError> {
        for idle in &self.idle {
            while idle.len() < self.settings.instances {
                let instance = self.instantiate().await.map_err(LoadError::Init)?;
                let _ = idle.push(instance);
            }
        }
        Ok(())
    }

    /// A fresh instance that ran `init`, or why not.
    async fn instantiate(&self) -> Result<Instance, String> {
        let init_time = (self.settings.timeout * 1000).max(Duration::from_secs(1));
        let deadline = Instant::now() + init_time;
        within(deadline, self.instantiate_fueled(deadline))
            .await
            .unwrap_or_else(|| Err("init missed its deadline".into()))
    }

    async fn instantiate_fueled(&self, deadline: Instant) -> Result<Instance, String> {
        let mut store = Store::new(
            &self.engine.engine,
            HostState::new(self.settings.memory, self.engine.limit_table.clone()),
        );
        store.limiter(|state| state);
        let init_fuel = self.settings.fuel.saturating_mul(INIT_BUDGET_FACTOR);
        arm(&mut store, init_fuel, deadline);
        let world = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(&e, store.data()).to_string())?;
        world
            .call_init(&mut store, &self.settings.config_json)
            .await
            .map_err(|e| classify(&e, store.data()).to_string())??;
        if let Some(count) = store.data().routes {
            let _ = self.routes.set(count);
        }
        if store.data_mut().settle_memory() && !self.memory_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                memory_limit = self.settings.memory,
                "a fresh policy instance already uses most of its memory limit, so instances \
                 will be replaced often; raise [policy] memory"
            );
        }
        Ok(Instance { store, world })
    }

    /// The settings this policy was loaded with.
    pub fn settings(&self) -> &PolicyConfig {
        &self.settings
    }

    /// How many rules it holds, if its `init` said (`report-routes`).
    pub fn routes(&self) -> Option<u32> {
        self.routes.get().copied()
    }

    /// Its content hash and load time.
    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }
}

/// Give the store a fresh fuel budget before a call, and make the guest
/// yield every [`YIELD_EVERY`] of it so its deadline can be checked.
fn arm(store: &mut Store<HostState>, fuel: u64, deadline: Instant) {
    store.data_mut().start_call(deadline);
    // Fuel is on for every store of this engine, and calls are async, so
    // neither can fail.
    let _ = store.set_fuel(fuel);
    let _ = store.fuel_async_yield_interval(Some(YIELD_EVERY));
}

/// `call`'s output, or `None` when it outlasts `deadline`: checked at each
/// of the guest's fuel yields (a computing guest) and by a tokio timer (a
/// guest waiting in a WASI call, which does not yield). One clock read per
/// call (the caller's): the timer is only registered if the call waits.
async fn within<F: Future>(deadline: Instant, call: F) -> Option<F::Output> {
    let call = std::pin::pin!(call);
    let late = Deadline::new(call, deadline);
    match tokio::time::timeout_at(deadline.into(), late).await {
        Ok(Ok(output)) => Some(output),
        Ok(Err(_)) | Err(_) => None,
    }
}

fn classify(error: &wasmtime::Error, state: &HostState) -> CallError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel,
        _ if state.was_late() => CallError::Deadline,
        _ if state.memory_refused => CallError::Memory,
        Some(trap) => CallError::Trap(trap.to_string()),
        // Not a trap: the guest's answer could not be lifted (bad UTF-8, bad
        // discriminant...), which is the guest's fault too.
        None => CallError::InvalidDecision(format!("{error:#}")),
    }
}
