//! Workers: with `workers = 2` each worker accepts on its own
//! `SO_REUSEPORT` socket and runs its connections to the end; swaps and
//! shutdown must reach both.

use std::sync::Arc;
use std::time::Duration;

use limen::control::admin::protocol::Answer;
use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{WAIT, echoes, hello};

const PER_WORKER: &str = "limen_worker_connections_total";

/// Connections each worker has accepted so far.
fn per_worker(limen: &Running) -> [u64; 2] {
    ["0", "1"].map(|w| limen.counter(PER_WORKER, &[("worker", w)]))
}

/// One connection: send `hello`, read the raw backend's whole reply.
async fn reply(limen: &Running, hello: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut tcp = TcpStream::connect(limen.addr).await?;
    tcp.write_all(hello).await?;
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply)).await??;
    Ok(reply)
}

/// Route everything to `upstream` from now on, through a swap.
async fn swap_to(limen: &Running, module: &Arc<[u8]>, upstream: &str) -> anyhow::Result<()> {
    let json = serde_json::json!({ "default": upstream }).to_string();
    match limen.control.swap(module.clone(), Some(json)).await {
        Answer::Swapped(_) => Ok(()),
        other => anyhow::bail!("swap to {upstream} not applied: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_take_connections_a_swap_reaches_both_and_shutdown_drains_both()
-> anyhow::Result<()> {
    let (a, _a_seen) = backend::raw(b"A").await?;
    let (b, _b_seen) = backend::raw(b"B").await?;
    let echo = backend::echo().await?;
    let module: Arc<[u8]> = std::fs::read(guests::example("static-routes"))?.into();
    let toml = format!(
        "workers = 2\n{}",
        config(
            &guests::example("static-routes"),
            &format!("default = \"{a}\""),
            "",
            "[limits]\nshutdown_grace = \"10s\"",
        )
    );
    let limen = Running::start(&toml).await?;
    let hello = hello("small-a.test.bin");

    // The kernel spreads connections by their 4-tuple: 64 all on one
    // worker would mean the other is not accepting (odds 2^-63).
    for _ in 0..64 {
        assert_eq!(reply(&limen, &hello).await?, b"A");
    }
    let first = per_worker(&limen);
    assert!(
        first[0] > 0 && first[1] > 0,
        "both workers accept: {first:?}"
    );
    assert_eq!(first[0] + first[1], 64, "every connection counted once");
    assert_eq!(limen.counter("limen_connections_total", &[]), 64);

    // A swap reaches both: every later connection, whichever worker takes
    // it, is decided by the new policy.
    swap_to(&limen, &module, &b.to_string()).await?;
    for _ in 0..64 {
        assert_eq!(reply(&limen, &hello).await?, b"B");
    }
    let second = per_worker(&limen);
    assert!(
        second[0] > first[0] && second[1] > first[1],
        "both workers decided with the new policy: {first:?} then {second:?}"
    );

    // Shutdown drains both: hold connections open on each worker.
    swap_to(&limen, &module, &echo.to_string()).await?;
    let mut open = Vec::new();
    let mut holding = [false; 2];
    while !(holding[0] && holding[1]) {
        anyhow::ensure!(open.len() < 64, "64 connections, still one worker idle");
        let before = per_worker(&limen);
        let mut tcp = TcpStream::connect(limen.addr).await?;
        echoes(&mut tcp, &hello).await?;
        let after = per_worker(&limen);
        for w in 0..2 {
            holding[w] |= after[w] > before[w];
        }
        open.push(tcp);
    }
    let addr = limen.addr;
    let stopping = tokio::spawn(limen.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "neither worker accepts once stopping"
    );
    for tcp in &mut open {
        echoes(tcp, b"still here").await?;
    }
    assert!(
        !stopping.is_finished(),
        "limen waits for both workers' connections"
    );
    drop(open);
    tokio::time::timeout(WAIT, stopping).await???;
    Ok(())
}

/// Every worker's socket is in one `SO_REUSEPORT` group; that must not let a
/// second limen (or a second listener) join a port already served: it is
/// refused with E010, as a plain bind would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_already_served_is_refused_not_shared() -> anyhow::Result<()> {
    let (a, _a_seen) = backend::raw(b"A").await?;
    let toml = config(
        &guests::example("static-routes"),
        &format!("default = \"{a}\""),
        "",
        "",
    );
    let first = Running::start(&format!("workers = 2\n{toml}")).await?;
    let taken = first.addr.to_string();
    let second = Running::start(&toml.replace("127.0.0.1:0", &taken)).await;
    let error = second
        .err()
        .expect("a second limen on a served port is refused");
    assert!(error.to_string().contains("E010"), "{error}");
    assert_eq!(reply(&first, &hello("small-a.test.bin")).await?, b"A");
    first.stop().await
}
