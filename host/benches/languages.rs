//! One `regex-services` decision on a reused instance, for each language's
//! build of it (Rust, Python, JavaScript, C), with the shared config
//! `examples-guests/regex-services/policy.toml`.
//!
//! Needs `cargo xtask guests`. Start-up (compile vs cache) is measured by
//! `bench/languages.sh`, per process, as an operator sees it.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use limen::hello::{self, HelloSummary, Progress};
use limen::policy::{Connection, Policy, PolicyEngine};
use limen::state::config::PolicyConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn summary(sni: &str) -> std::sync::Arc<HelloSummary> {
    let bytes = hello::synthesise(Some(sni), &["h2".into()]).expect("hello");
    match hello::frame(&bytes, bytes.len()) {
        Ok(Progress::Complete(framed)) => {
            std::sync::Arc::new(HelloSummary::parse(&framed).expect("valid hello"))
        }
        other => panic!("not a complete hello: {other:?}"),
    }
}

fn decisions(c: &mut Criterion) {
    let dir = root().join("examples-guests/regex-services");
    let table: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("policy.toml")).expect("policy.toml"))
            .expect("policy.toml is TOML");
    let config_json = serde_json::to_string(&table).expect("json");
    let engine = PolicyEngine::new().expect("engine");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let conn = Connection {
        client: "192.0.2.1:50000".parse().expect("addr"),
        local: "127.0.0.1:8443".parse().expect("addr"),
        listener: "bench".into(),
    };
    let hit = summary("web-api-prod.apps.example");
    let miss = summary("nothing.example");
    for (language, name) in [
        ("rust", "regex-services"),
        ("python", "regex-services-py"),
        ("javascript", "regex-services-js"),
        ("c", "regex-services-c"),
    ] {
        let mut settings = PolicyConfig::offline(
            root().join("target/guests").join(format!("{name}.wasm")),
            config_json.clone(),
        );
        settings.fuel = 20_000_000;
        // A loaded 2-core machine can preempt a call for more than 5 ms.
        settings.timeout = std::time::Duration::from_secs(1);
        let engine = engine.clone().with_cache(settings.cache.as_deref());
        let policy = rt
            .block_on(Policy::load(&engine, &settings))
            .unwrap_or_else(|e| panic!("{name} (run `cargo xtask guests`): {e}"));
        for (label, hello) in [("regex-hit", &hit), ("fallback", &miss)] {
            for _ in 0..100 {
                rt.block_on(policy.decide(&conn, Some(hello)))
                    .expect("decision");
            }
            c.bench_function(&format!("policy/regex-services/{language}/{label}"), |b| {
                b.to_async(&rt).iter(|| async {
                    policy
                        .decide(black_box(&conn), black_box(Some(hello)))
                        .await
                        .expect("decision")
                })
            });
            let fuel = rt
                .block_on(policy.decide(&conn, Some(hello)))
                .expect("decision")
                .fuel_used;
            eprintln!("fuel per decision ({language}, {label}): {fuel}");
        }
    }
}

criterion_group!(benches, decisions);
criterion_main!(benches);
