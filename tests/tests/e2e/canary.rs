//! A candidate on canary (`limen swap --canary PERCENT`): it decides the
//! share of client addresses a stable hash gives it, the same on every
//! instance; one that fails too often is rolled back on its own, and no
//! client sees its failures (the live policy decides those connections).

use std::net::SocketAddr;
use std::sync::Arc;

use limen::control::admin::protocol::Answer;
use limen::observe::metrics::names;
use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};

use crate::pools::ask;

fn module(name: &str) -> anyhow::Result<Arc<[u8]>> {
    Ok(std::fs::read(guests::example(name))?.into())
}

/// A limen whose live policy sends everything to `live`.
async fn start(live: SocketAddr, extra: &str) -> anyhow::Result<Running> {
    let routes = format!("default = \"{live}\"\nroutes = []");
    let extra = format!("[metrics]\nbind = \"127.0.0.1:0\"\n{extra}");
    Running::start(&config(
        &guests::example("static-routes"),
        &routes,
        "",
        &extra,
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_percent_canary_takes_a_tenth_of_the_clients_the_same_on_two_instances()
-> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let (c, _rc) = backend::raw(b"C").await?;
    let (one, two) = (start(a, "").await?, start(a, "").await?);
    let candidate = format!(r#"{{"default":"{c}","routes":[]}}"#);
    for limen in [&one, &two] {
        let mode = (false, Some(10.0));
        let answer = limen
            .control
            .try_candidate(module("static-routes")?, Some(candidate.clone()), mode)
            .await;
        anyhow::ensure!(matches!(answer, Answer::Shadowing(_)), "{answer:?}");
    }
    // 5,000 client addresses (127.0.x.y), each asking both instances.
    let clients: Vec<SocketAddr> = (1..=20u8)
        .flat_map(|x| (1..=250u8).map(move |y| SocketAddr::from(([127, 0, x, y], 0))))
        .collect();
    let mut workers = tokio::task::JoinSet::new();
    for chunk in clients.chunks(clients.len() / 16 + 1) {
        let (chunk, one, two) = (chunk.to_vec(), one.addr, two.addr);
        workers.spawn(async move {
            let mut candidate = 0usize;
            for client in chunk {
                let (first, second) =
                    (ask(one, Some(client)).await?, ask(two, Some(client)).await?);
                anyhow::ensure!(first == second, "{client} got {first} and {second}");
                anyhow::ensure!(first == b'A' || first == b'C', "{client} got {first}");
                candidate += usize::from(first == b'C');
            }
            anyhow::Ok(candidate)
        });
    }
    let mut candidate = 0;
    while let Some(done) = workers.join_next().await {
        candidate += done??;
    }
    let share = candidate as f64 / clients.len() as f64;
    assert!(
        (0.08..=0.12).contains(&share),
        "the candidate decided {share}"
    );
    let decided = [("outcome", "decided")];
    assert_eq!(
        one.counter(names::POLICY_CANARY, &decided),
        candidate as u64
    );
    one.stop().await?;
    two.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_traps_on_half_its_calls_is_rolled_back_and_no_client_sees_it()
-> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let limen = start(a, "[policy.canary]\nmin_calls = 20\nmargin = 0.05").await?;
    let candidate = format!(r#"{{"upstream":"{a}"}}"#);
    let mode = (false, Some(100.0));
    let answer = limen
        .control
        .try_candidate(module("misbehave")?, Some(candidate), mode)
        .await;
    anyhow::ensure!(matches!(answer, Answer::Shadowing(_)), "{answer:?}");
    let panic = limen::offline::explain::synthesise("panic.test", &[])?;
    let fine = limen::offline::explain::synthesise("fine.test", &[])?;
    for i in 0..60 {
        let hello = if i % 2 == 0 { &panic } else { &fine };
        let reply = crate::common::ask(limen.addr, hello).await?;
        assert_eq!(reply, b"A", "connection {i}");
    }
    let rolled = [("outcome", "rolled_back")];
    assert_eq!(
        limen
            .counter_reaches(names::POLICY_CANARY, &rolled, 1)
            .await,
        1
    );
    // Judged at its 20th call: 10 of them failed.
    let failed = limen.counter(names::POLICY_CANARY, &[("outcome", "failed")]);
    assert_eq!(failed, 10);
    // The trial is over: nothing to promote.
    let answer = limen.control.promote().await;
    anyhow::ensure!(matches!(answer, Answer::Denied { .. }), "{answer:?}");
    limen.stop().await
}
