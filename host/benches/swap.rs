//! What a swap costs before the candidate goes live: `Policy::prepare` (hash,
//! compile or load from the cache, type-check, `init` and warm-up of every
//! instance, self-test) for the Rust example guest, cold and cached.
//!
//! Needs `cargo xtask guests`. `LIMEN_BENCH_MODULE=path.wasm` benches another
//! module (its init must accept `{"default": "HOST:PORT"}`), e.g. an 18 MB
//! Python component.
//!
//! `cargo bench -p limen --bench swap`

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use limen::Config;
use limen::policy::{Module, Policy, PolicyEngine};

fn module_path() -> PathBuf {
    std::env::var_os("LIMEN_BENCH_MODULE").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests/static-routes.wasm"),
        PathBuf::from,
    )
}

fn prepare(c: &mut Criterion) {
    let path = module_path();
    let toml = format!(
        "[[listeners]]\nname = \"bench\"\nbind = \"127.0.0.1:0\"\n[policy]\nmodule = \"{}\"\n\
         instances = 3\nfuel = 100_000_000\ntimeout = \"1s\"\nmemory = \"256MiB\"\n\
         [policy.config]\ndefault = \"127.0.0.1:9451\"\n",
        path.display()
    );
    let config = Config::from_toml(&toml).expect("bench config");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let module = rt
        .block_on(Module::read(&path))
        .expect("module (run `cargo xtask guests`)");
    let name = path
        .file_stem()
        .map_or("module".into(), |s| s.to_string_lossy().into_owned());
    let mut group = c.benchmark_group(format!("prepare/{name}"));
    group.sample_size(10);

    let cold = PolicyEngine::new().expect("engine");
    group.bench_function("cold", |b| {
        b.to_async(&rt).iter(|| async {
            Policy::prepare(&cold, &config.policy, &module)
                .await
                .expect("prepare")
        })
    });

    let dir = std::env::temp_dir().join(format!("limen-bench-cache-{}", std::process::id()));
    let cached = PolicyEngine::new().expect("engine").with_cache(Some(&dir));
    rt.block_on(Policy::prepare(&cached, &config.policy, &module))
        .expect("fill the cache");
    group.bench_function("cached", |b| {
        b.to_async(&rt).iter(|| async {
            Policy::prepare(&cached, &config.policy, &module)
                .await
                .expect("prepare")
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, prepare);
criterion_main!(benches);
