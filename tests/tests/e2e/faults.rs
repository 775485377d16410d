//! Policy faults, with guests encoded from WAT at test time: each applies the
//! configured fail mode, is counted by kind, and the next connection is
//! served normally (a fresh instance replaces the failed one).

use std::time::Duration;

use limen::observe::metrics::names::POLICY_FAILURES;
use limen_e2e::backend;
use limen_e2e::guests::{PASSTHROUGH_10_255_0_1, policy_component, route_body, route_module};
use limen_e2e::harness::{Running, config};
use limen_e2e::pki::Pki;
use rustls::AlertDescription;

use crate::common::{WAIT, alert_of, hello, raw_exchange, scratch, tls_get};

/// Write a WAT policy to a file and start limen on it with `policy` settings.
async fn limen_with(wat: &str, policy: &str) -> anyhow::Result<Running> {
    let module = scratch("policy.wasm");
    std::fs::write(&module, policy_component(wat)?)?;
    Running::start(&config(&module, "", policy, "")).await
}

/// Each fault, twice over, with `on_error = { fallback = ... }`: both
/// connections reach the fallback and each failure is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_falls_back_and_the_next_connection_is_served() -> anyhow::Result<()> {
    let (fallback, mut fallback_rx) = backend::raw(b"F").await?;
    let cases = [
        (
            "fuel",
            route_body("(loop $spin (br $spin)) unreachable", ""),
            "fuel = 100_000",
        ),
        (
            "deadline",
            route_body("(loop $spin (br $spin)) unreachable", ""),
            "fuel = 1_000_000_000_000\ntimeout = \"20ms\"",
        ),
        ("trap", route_body("unreachable", ""), ""),
        (
            "memory",
            // 64 MiB more than a 16 MiB limit: memory.grow fails, the guest aborts.
            route_body(
                "(if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1)) (then unreachable)) (i32.const 512)",
                "",
            ),
            "memory = \"16MiB\"",
        ),
        (
            "invalid_decision",
            route_body("(i32.const 512)", PASSTHROUGH_10_255_0_1),
            "",
        ),
    ];
    for (kind, wat, settings) in cases {
        let policy = format!("{settings}\non_error = {{ fallback = \"{fallback}\" }}");
        let limen = limen_with(&wat, &policy).await?;
        for attempt in 1..=2 {
            let hello = hello("small-a.test.bin");
            let reply = raw_exchange(limen.addr, &[&hello], Duration::ZERO).await?;
            assert_eq!(
                reply, b"F",
                "{kind} #{attempt}: the fallback must serve the connection"
            );
            let received = tokio::time::timeout(WAIT, fallback_rx.recv())
                .await?
                .expect("fallback report");
            assert_eq!(
                received.bytes, hello,
                "{kind}: the fallback gets the hello byte for byte"
            );
            assert_eq!(
                limen.counter(POLICY_FAILURES, &[("kind", kind)]),
                attempt,
                "{kind}"
            );
        }
        limen.stop().await?;
    }
    Ok(())
}

/// `on_error = { reject = ... }`: the client gets that alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_with_reject_mode_sends_the_alert() -> anyhow::Result<()> {
    let pki = Pki::new(&["a.test"])?;
    let limen = limen_with(
        &route_body("unreachable", ""),
        "on_error = { reject = \"handshake_failure\" }",
    )
    .await?;
    for _ in 0..2 {
        let error = tls_get(limen.addr, "a.test", pki.client_config(&[])?)
            .await
            .unwrap_err();
        assert_eq!(
            alert_of(&error),
            Some(AlertDescription::HandshakeFailure),
            "{error}"
        );
    }
    assert_eq!(limen.counter(POLICY_FAILURES, &[("kind", "trap")]), 2);
    limen.stop().await
}

/// A module whose `init` fails is refused at start: limen does not come up
/// with a policy it cannot trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_failure_refuses_to_start() -> anyhow::Result<()> {
    let wat = route_body("unreachable", "").replace(
        "(func (export \"init\") (param i32 i32) (result i32) (i32.const 256))",
        INIT_FAILS,
    );
    let error = limen_with(&wat, "").await.err().expect("must not start");
    assert!(format!("{error:#}").contains("P004"), "{error:#}");
    Ok(())
}

/// `init` returning `err("bad config")`: result discriminant 1 at 256, the
/// string (pointer, length) at 260.
pub(crate) const INIT_FAILS: &str = r#"(func (export "init") (param i32 i32) (result i32) (i32.const 256))
  (data (i32.const 256) "\01\00\00\00\00\03\00\00\0a\00\00\00") (data (i32.const 768) "bad config")"#;

/// A real Rust guest (`examples-guests/misbehave`) that panics, spins,
/// allocates past its limit, prints to stdout and names a forbidden upstream:
/// each is contained (WASI output included), the fail mode applies, and a
/// well-behaved name routed in between still reaches its upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_rust_guest_is_contained() -> anyhow::Result<()> {
    let (fallback, mut fallback_rx) = backend::raw(b"F").await?;
    let (upstream, mut upstream_rx) = backend::raw(b"U").await?;
    let policy = format!("on_error = {{ fallback = \"{fallback}\" }}");
    let module = limen_e2e::guests::example("misbehave");
    let limen = Running::start(&config(
        &module,
        &format!("upstream = \"{upstream}\""),
        &policy,
        "",
    ))
    .await?;
    let send = |sni: &str| {
        let hello = limen::offline::explain::synthesise(sni, &[]).expect("hello");
        async move { raw_exchange(limen.addr, &[&hello], Duration::ZERO).await }
    };
    for (sni, reply, kind) in [
        ("panic.test", "F", Some("trap")),
        ("loop.test", "F", Some("fuel")),
        ("sleep.test", "F", Some("deadline")),
        ("alloc.test", "F", Some("memory")),
        ("print.test", "U", None),
        ("open.test", "F", Some("invalid_decision")),
    ] {
        assert_eq!(send(sni).await?, reply.as_bytes(), "{sni}");
        let rx = if reply == "F" {
            &mut fallback_rx
        } else {
            &mut upstream_rx
        };
        tokio::time::timeout(WAIT, rx.recv())
            .await?
            .expect("backend report");
        if let Some(kind) = kind {
            assert_eq!(
                limen.counter(POLICY_FAILURES, &[("kind", kind)]),
                1,
                "{sni}"
            );
        }
        assert_eq!(send("fine.test").await?, b"U", "after {sni}");
        tokio::time::timeout(WAIT, upstream_rx.recv())
            .await?
            .expect("backend report");
    }
    limen.stop().await
}

/// A guest that loops on `log` with a 2 MiB message spends almost no fuel
/// (the copy is the host's work), so fuel yields never come; `log` itself
/// traps once the call is late: the deadline holds, counted as `deadline`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_looping_on_log_still_meets_its_deadline() -> anyhow::Result<()> {
    let (fallback, _) = backend::raw(b"F").await?;
    // The message (2 MiB of zeros at 1 MiB) lies beyond what the host's
    // argument allocator (from 4096) uses.
    let wat = route_module(
        r#"(import "limen:router/host@0.2.0" "log" (func $log (param i32 i32 i32)))"#,
        64,
        "(loop $spin
      (call $log (i32.const 1) (i32.const 1048576) (i32.const 2097152))
      (br $spin))
    unreachable",
        "",
    );
    let policy = format!(
        "fuel = 1_000_000_000_000\ntimeout = \"50ms\"\non_error = {{ fallback = \"{fallback}\" }}"
    );
    let limen = limen_with(&wat, &policy).await?;
    let started = std::time::Instant::now();
    let reply = raw_exchange(limen.addr, &[&hello("small-a.test.bin")], Duration::ZERO).await?;
    assert_eq!(reply, b"F", "the fail mode serves the connection");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped near its 50 ms deadline, not after minutes: {:?}",
        started.elapsed()
    );
    let late = limen
        .counter_reaches(POLICY_FAILURES, &[("kind", "deadline")], 1)
        .await;
    assert!(late >= 1, "counted as a deadline failure");
    limen.stop().await
}
