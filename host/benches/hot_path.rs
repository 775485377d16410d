//! The per-connection CPU work limen adds, without sockets:
//! framing + parsing a ClientHello, and one policy decision on a warm instance.
//!
//! Needs `cargo xtask guests` (for target/guests/static-routes.wasm) and
//! `../shared` beside the repository (for the recorded hellos).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use limen::Config;
use limen::hello::{self, Fingerprints, HelloSummary, Progress};
use limen::policy::{Connection, Policy, PolicyEngine};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn recorded(name: &str) -> Vec<u8> {
    let shared =
        std::env::var_os("LIMEN_SHARED").map_or_else(|| root().join("../shared"), PathBuf::from);
    std::fs::read(shared.join("peerbench/hello").join(name)).expect("recorded hello (../shared)")
}

fn parse(bytes: &[u8]) -> HelloSummary {
    match hello::frame(bytes, 16 * 1024) {
        Ok(Progress::Complete(framed)) => HelloSummary::parse(&framed).expect("valid hello"),
        other => panic!("not a complete hello: {other:?}"),
    }
}

fn hello_parse(c: &mut Criterion) {
    for (label, file) in [
        ("327B", "captured.bin"),
        ("1840B-pq", "large-b.test.bin"),
        ("1845B-2rec", "large2rec-b.test.bin"),
    ] {
        let bytes = recorded(file);
        c.bench_function(&format!("hello/frame+parse/{label}"), |b| {
            b.iter(|| parse(black_box(&bytes)))
        });
        // What JA3 + JA4 would add to the parse above (computed on first use).
        let summary = parse(&bytes);
        c.bench_function(&format!("hello/fingerprints/{label}"), |b| {
            b.iter(|| Fingerprints::of(black_box(&summary)))
        });
    }
}

/// `static-routes` with 100 routes: 80 exact names, 10 wildcards, 10 regexes.
fn hundred_routes() -> String {
    let mut routes = Vec::new();
    for i in 0..100 {
        let pattern = match i % 10 {
            3 => format!("*.w{i}.example"),
            7 => format!("~^node[0-9]+\\\\.r{i}\\\\.example$"),
            _ => format!("host{i}.example"),
        };
        routes.push(format!(
            "{{ match = '{pattern}', upstream = \"127.0.0.1:{}\" }}",
            10000 + i
        ));
    }
    format!(
        "default = \"127.0.0.1:9999\"\nroutes = [\n{}\n]",
        routes.join(",\n")
    )
}

fn policy_decision(c: &mut Criterion) {
    // LIMEN_BENCH_GUEST: another build of static-routes (e.g. one from before a change).
    let module = std::env::var_os("LIMEN_BENCH_GUEST").map_or_else(
        || root().join("target/guests/static-routes.wasm"),
        PathBuf::from,
    );
    let toml = format!(
        "[[listeners]]\nname = \"bench\"\nbind = \"127.0.0.1:0\"\n[policy]\nmodule = \"{}\"\ninstances = 1\n# A loaded 2-core machine can preempt a call for more than the default 5 ms.\ntimeout = \"1s\"\n[policy.config]\n{}\n",
        module.display(),
        hundred_routes().replace("\\\\", "\\")
    );
    let config = Config::from_toml(&toml).expect("bench config");
    let engine = PolicyEngine::new().expect("engine");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let policy = rt
        .block_on(Policy::load(&engine, &config.policy))
        .expect("static-routes (run `cargo xtask guests`)");
    let conn = Connection {
        client: "192.0.2.1:50000".parse().expect("addr"),
        local: "127.0.0.1:8443".parse().expect("addr"),
        listener: "bench".into(),
    };
    // An exact hit late in the table, and a miss that tries every wildcard and regex.
    for (label, sni) in [
        ("hit-exact", "host98.example"),
        ("miss-all-patterns", "nothing.example"),
    ] {
        let hello = std::sync::Arc::new(parse(
            &limen::offline::explain::synthesise(sni, &["h2".into(), "http/1.1".into()])
                .expect("hello"),
        ));
        // Warm up the guest's lazy structures (regex caches) before measuring.
        for _ in 0..100 {
            rt.block_on(policy.decide(&conn, Some(&hello)))
                .expect("decision");
        }
        c.bench_function(&format!("policy/static-routes-100/{label}"), |b| {
            b.to_async(&rt).iter(|| async {
                policy
                    .decide(black_box(&conn), black_box(Some(&hello)))
                    .await
                    .expect("decision")
            })
        });
        let fuel = rt
            .block_on(policy.decide(&conn, Some(&hello)))
            .expect("decision")
            .fuel_used;
        eprintln!("fuel per decision ({label}, {sni}): {fuel}");
    }
    // No hello at all (non-TLS first bytes): the cost of the call itself.
    c.bench_function("policy/static-routes-100/no-hello", |b| {
        b.to_async(&rt).iter(|| async {
            policy
                .decide(black_box(&conn), None)
                .await
                .expect("decision")
        })
    });
}

criterion_group!(benches, hello_parse, policy_decision);
criterion_main!(benches);
