//! A loaded policy: the compiled component, linked once, and a pool of warm
//! instances reused across connections.
//!
//! A `route` call on a warm instance costs about a microsecond; a fresh
//! instance costs tens (and would re-run `init`, which may compile regexes),
//! so instances live as long as they behave. An instance that fails a call is
//! dropped: after a trap its state cannot be trusted.

use std::path::Path;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use super::bindings::{PolicyPre, PolicyWorld};
use super::engine::{EPOCH_TICK, PolicyEngine};
use super::state::HostState;
use super::{Connection, PolicyError, convert};
use crate::config::{INIT_BUDGET_FACTOR, PolicyConfig};
use crate::decision::Decision;
use crate::hello::HelloSummary;

/// A policy ready to decide.
pub struct Policy {
    engine: PolicyEngine,
    pre: PolicyPre<HostState>,
    settings: PolicyConfig,
    idle: ArrayQueue<Instance>,
}

/// One instance and the store it lives in.
struct Instance {
    store: Store<HostState>,
    world: PolicyWorld,
}

/// A decision and what it cost.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What the policy decided.
    pub decision: Decision,
    /// Fuel the call consumed.
    pub fuel_used: u64,
}

impl Policy {
    /// Read, compile and link the module (on a blocking thread: this is the
    /// slow part), type-check it against the world, then warm
    /// `settings.instances` instances, running `init` in each.
    pub async fn load(
        engine: &PolicyEngine,
        settings: &PolicyConfig,
    ) -> Result<Policy, PolicyError> {
        let (engine2, path) = (engine.clone(), settings.module.clone());
        let pre = tokio::task::spawn_blocking(move || compile(&engine2, &read_module(&path)?))
            .await
            .map_err(|e| PolicyError::Compile(format!("compiler thread failed: {e}")))??;
        Policy::warm(engine, settings, pre).await
    }

    /// As [`load`](Self::load), from the component's bytes, compiling on the
    /// calling thread.
    pub async fn from_bytes(
        engine: &PolicyEngine,
        settings: &PolicyConfig,
        bytes: &[u8],
    ) -> Result<Policy, PolicyError> {
        let pre = compile(engine, bytes)?;
        Policy::warm(engine, settings, pre).await
    }

    async fn warm(
        engine: &PolicyEngine,
        settings: &PolicyConfig,
        pre: PolicyPre<HostState>,
    ) -> Result<Policy, PolicyError> {
        let policy = Policy {
            engine: engine.clone(),
            pre,
            settings: settings.clone(),
            idle: ArrayQueue::new(settings.instances),
        };
        for _ in 0..settings.instances {
            let instance = policy.instantiate().await?;
            let _ = policy.idle.push(instance);
        }
        Ok(policy)
    }

    /// Ask the policy about one connection.
    ///
    /// The guest runs on a fiber on the calling task, bounded by the fuel
    /// budget and the deadline; it only yields if it calls a WASI function
    /// that waits. Only when every warm instance is busy or was dropped after
    /// a failure does this instantiate one inline.
    pub async fn decide(
        &self,
        conn: &Connection,
        hello: Option<&HelloSummary>,
    ) -> Result<Verdict, PolicyError> {
        let mut instance = match self.idle.pop() {
            Some(instance) => instance,
            None => self.instantiate().await?,
        };
        let conn = convert::connection(conn);
        let hello = hello.map(convert::client_hello);
        let budget = self.settings.fuel;
        arm(&mut instance.store, budget, self.settings.timeout);
        // The epoch deadline stops a guest that computes; this stops one that
        // waits in a WASI call (a sleep, a poll), where no epoch check runs.
        let call = instance
            .world
            .call_route(&mut instance.store, &conn, hello.as_ref());
        let result = match tokio::time::timeout(self.settings.timeout + 2 * EPOCH_TICK, call).await
        {
            Ok(result) => result,
            Err(_) => return Err(PolicyError::Deadline),
        };
        let fuel_used = budget.saturating_sub(instance.store.get_fuel().unwrap_or(0));
        match result {
            Ok(decision) => {
                // A full pool means more instances exist than are needed: drop this one.
                let _ = self.idle.push(instance);
                let decision = convert::decision(decision).map_err(PolicyError::InvalidDecision)?;
                Ok(Verdict {
                    decision,
                    fuel_used,
                })
            }
            Err(error) => Err(classify(&error, instance.store.data())),
        }
    }

    async fn instantiate(&self) -> Result<Instance, PolicyError> {
        let init_time = (self.settings.timeout * 1000).max(Duration::from_secs(1));
        tokio::time::timeout(
            init_time + 2 * EPOCH_TICK,
            self.instantiate_within(init_time),
        )
        .await
        .unwrap_or_else(|_| Err(PolicyError::Init("init missed its deadline".into())))
    }

    async fn instantiate_within(&self, init_time: Duration) -> Result<Instance, PolicyError> {
        let mut store = Store::new(&self.engine.engine, HostState::new(self.settings.memory));
        store.limiter(|state| state);
        let init_fuel = self.settings.fuel.saturating_mul(INIT_BUDGET_FACTOR);
        arm(&mut store, init_fuel, init_time);
        let world = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| PolicyError::Init(classify(&e, store.data()).to_string()))?;
        world
            .call_init(&mut store, &self.settings.config_json)
            .await
            .map_err(|e| PolicyError::Init(classify(&e, store.data()).to_string()))?
            .map_err(PolicyError::Init)?;
        Ok(Instance { store, world })
    }

    /// The settings this policy was loaded with.
    pub fn settings(&self) -> &PolicyConfig {
        &self.settings
    }
}

/// Compile and link: the component must be valid and of the policy world.
fn compile(engine: &PolicyEngine, bytes: &[u8]) -> Result<PolicyPre<HostState>, PolicyError> {
    let component = Component::new(&engine.engine, bytes)
        .map_err(|e| PolicyError::Compile(format!("{e:#}")))?;
    let instance_pre = engine
        .linker
        .instantiate_pre(&component)
        .map_err(|e| PolicyError::WrongWorld(format!("{e:#}")))?;
    PolicyPre::new(instance_pre).map_err(|e| PolicyError::WrongWorld(format!("{e:#}")))
}

/// Give the store a fresh fuel budget and deadline before a call.
fn arm(store: &mut Store<HostState>, fuel: u64, timeout: Duration) {
    store.data_mut().start_call();
    // Fuel is on for every store of this engine, so this cannot fail.
    let _ = store.set_fuel(fuel);
    store.set_epoch_deadline(PolicyEngine::ticks_for(timeout));
}

fn classify(error: &wasmtime::Error, state: &HostState) -> PolicyError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PolicyError::OutOfFuel,
        Some(Trap::Interrupt) => PolicyError::Deadline,
        _ if state.memory_refused => PolicyError::Memory,
        Some(trap) => PolicyError::Trap(trap.to_string()),
        // Not a trap: the guest's answer could not be lifted (bad UTF-8, bad
        // discriminant...), which is the guest's fault too.
        None => PolicyError::InvalidDecision(format!("{error:#}")),
    }
}

fn read_module(path: &Path) -> Result<Vec<u8>, PolicyError> {
    std::fs::read(path).map_err(|e| PolicyError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}
