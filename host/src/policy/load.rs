//! Making a policy ready: read, hash, compile (or load from the cache),
//! type-check against the world, warm instances (running `init`), and run the
//! `[[policy.expect]]` self-test. A policy that passes every step may go live;
//! nothing here touches the live one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use wasmtime::component::Component;

use super::bindings::PolicyPre;
use super::cache::CompiledFrom;
use super::engine::PolicyEngine;
use super::limit_table::LimitTable;
use super::runtime::Policy;
use super::settings::PolicyConfig;
use super::state::HostState;
use super::version::{ModuleHash, PolicyVersion};
use super::{LoadError, selftest};

/// Largest module limen reads (an 18 MB Python component fits).
pub const MAX_MODULE_BYTES: usize = 64 << 20;

/// What loading a policy took.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Compiled now or loaded from the cache.
    pub compiled_from: CompiledFrom,
    /// Hashing plus compiling or loading the compiled code.
    pub compile: Duration,
    /// Instantiating the warm instances, running their `init` and one
    /// warm-up `route` call each.
    pub init: Duration,
    /// Running the self-test samples.
    pub selftest: Duration,
    /// How many samples passed.
    pub samples: usize,
}

/// A module's bytes and their hash, computed once off the connection path.
#[derive(Clone)]
pub struct Module {
    bytes: Arc<[u8]>,
    /// SHA-256 of the bytes.
    pub hash: ModuleHash,
}

impl Module {
    /// Read and hash a module file on a blocking thread, refusing one over
    /// [`MAX_MODULE_BYTES`].
    pub async fn read(path: impl AsRef<Path>) -> Result<Module, LoadError> {
        let path = path.as_ref().to_owned();
        blocking(move || {
            let fail = |reason: String| LoadError::Read {
                path: path.display().to_string(),
                reason,
            };
            let len = std::fs::metadata(&path)
                .map_err(|e| fail(e.to_string()))?
                .len();
            if len > MAX_MODULE_BYTES as u64 {
                return Err(fail(format!(
                    "{len} bytes, more than the {MAX_MODULE_BYTES} limen reads"
                )));
            }
            let bytes: Arc<[u8]> = std::fs::read(&path)
                .map_err(|e| fail(e.to_string()))?
                .into();
            Ok(Module {
                hash: ModuleHash::of(&bytes),
                bytes,
            })
        })
        .await
    }

    /// Hash bytes received otherwise (from `limen swap`), on a blocking thread.
    pub async fn from_bytes(bytes: Arc<[u8]>) -> Result<Module, LoadError> {
        blocking(move || {
            Ok(Module {
                hash: ModuleHash::of(&bytes),
                bytes,
            })
        })
        .await
    }
}

impl Policy {
    /// Read `settings.module` and [`prepare`](Self::prepare) it.
    pub async fn load(engine: &PolicyEngine, settings: &PolicyConfig) -> Result<Policy, LoadError> {
        let module = Module::read(&settings.module).await?;
        Ok(Policy::prepare(engine, settings, &module).await?.0)
    }

    /// Load one instance of the configured policy on an engine of its own
    /// (sharing the compile cache): `limen check` and `limen explain`.
    pub async fn load_offline(settings: &PolicyConfig) -> Result<Policy, LoadError> {
        let engine = PolicyEngine::new()?.with_cache(settings.cache.as_deref());
        let settings = PolicyConfig {
            instances: 1,
            workers: 1,
            ..settings.clone()
        };
        Policy::load(&engine, &settings).await
    }

    /// Make a policy of `module`: compile it (or load it from the cache) on a
    /// blocking thread, type-check it, warm `settings.instances` instances per worker,
    /// run the self-test. The live policy serves meanwhile.
    pub async fn prepare(
        engine: &PolicyEngine,
        settings: &PolicyConfig,
        module: &Module,
    ) -> Result<(Policy, LoadReport), LoadError> {
        let start = Instant::now();
        let (engine2, bytes, hash) = (engine.clone(), module.bytes.clone(), module.hash);
        let (component, compiled_from) = blocking(move || {
            engine2
                .cache
                .load(&engine2.engine, hash, &bytes)
                .map_err(|e| LoadError::Compile(format!("{e:#}")))
        })
        .await?;
        let pre = link(engine, &component)?;
        let compile = start.elapsed();
        let policy = Policy {
            engine: engine.clone(),
            pre,
            settings: settings.clone(),
            idle: (0..settings.workers.max(1))
                .map(|_| ArrayQueue::new(settings.instances))
                .collect(),
            version: PolicyVersion::new(hash, &settings.config_json),
            memory_warned: Default::default(),
            routes: Default::default(),
        };
        let start = Instant::now();
        policy.fill().await?;
        // The warm-up and the self-test decide on limits of their own: they
        // spend no live token, and a bucket real traffic has emptied cannot
        // refuse a good candidate (a swap while a rate is saturated). Each
        // its own, so the self-test starts on full buckets.
        selftest::warm(&policy, &Arc::new(LimitTable::detached())).await?;
        // A warm-up call that failed dropped its instance: replace it now,
        // not on a connection.
        policy.fill().await?;
        let init = start.elapsed();
        let start = Instant::now();
        let samples =
            selftest::run(&policy, &settings.expect, &Arc::new(LimitTable::detached())).await?;
        let report = LoadReport {
            compiled_from,
            compile,
            init,
            selftest: start.elapsed(),
            samples,
        };
        Ok((policy, report))
    }
}

/// The version of `wit/router.wit` this limen provides.
pub const INTERFACE_VERSION: &str = "0.2.2";

/// Semver-compatible with [`INTERFACE_VERSION`], as wasmtime's linker
/// judges it: for 0.x, the same minor version (0.2.0 links against 0.2.1,
/// the host's extra functions unused).
fn compatible(version: &str) -> bool {
    fn minor(version: &str) -> Vec<&str> {
        version.split('.').take(2).collect()
    }
    minor(version) == minor(INTERFACE_VERSION)
}

/// A compatible version newer than this limen's: the guest may call a
/// function added since, which the type-check then reports as missing.
fn newer(version: &str) -> bool {
    let patch = |v: &str| v.split('.').nth(2).and_then(|p| p.parse::<u32>().ok());
    compatible(version) && patch(version) > patch(INTERFACE_VERSION)
}

/// Type-check: the component must be of the policy world, and import
/// nothing limen does not provide. A module built for another version of
/// the interface is told so, rather than which function does not match.
fn link(engine: &PolicyEngine, component: &Component) -> Result<PolicyPre<HostState>, LoadError> {
    let ty = component.component_type();
    let names = ty.imports(&engine.engine).map(|(name, _)| name);
    let versions: Vec<&str> = names
        .chain(ty.exports(&engine.engine).map(|(name, _)| name))
        .filter_map(|name| Some(name.strip_prefix("limen:router/")?.split_once('@')?.1))
        .collect();
    let wrong_version = |found: &str| LoadError::WrongVersion {
        found: found.to_owned(),
        needed: INTERFACE_VERSION,
    };
    if let Some(found) = versions.iter().find(|v| !compatible(v)) {
        return Err(wrong_version(found));
    }
    // A 0.2.x guest newer than this limen loads if it uses nothing added
    // since; if it does not link, the version it needs is the useful answer.
    let refuse = |e: wasmtime::Error| match versions.iter().find(|v| newer(v)) {
        Some(found) => wrong_version(found),
        None => LoadError::WrongWorld(format!("{e:#}")),
    };
    let instance_pre = engine.linker.instantiate_pre(component).map_err(refuse)?;
    PolicyPre::new(instance_pre).map_err(refuse)
}

/// Run file reading, hashing or compiling where it cannot stall connections.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LoadError> + Send + 'static,
) -> Result<T, LoadError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LoadError::Compile(format!("loader thread failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::{compatible, newer};

    /// 0.2.0 and 0.2.1 guests (before `transport`, `report-routes`) link; a
    /// later 0.2.x is flagged as newer, so a failed type-check can name the
    /// version it needs.
    #[test]
    fn the_0_2_series_links_and_newer_patches_are_told_apart() {
        assert!(compatible("0.2.0") && !newer("0.2.0"));
        assert!(compatible("0.2.1") && !newer("0.2.1"));
        assert!(compatible("0.2.2") && !newer("0.2.2"));
        assert!(compatible("0.2.3") && newer("0.2.3"));
        assert!(newer("0.2.10"), "compared as numbers, not text");
        assert!(!compatible("0.1.0") && !compatible("0.3.0") && !newer("0.3.0"));
    }
}
