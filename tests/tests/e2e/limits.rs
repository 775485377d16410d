//! Limits a policy uses (`take`, `acquire`), through `static-routes`'
//! `rate` and `max_connections`: kept in limen, exact, freed when
//! connections end, and still counting after a swap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use limen::observe::metrics::names;
use limen_e2e::harness::Running;
use limen_e2e::wait::eventually;
use limen_e2e::{backend, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::WAIT;

/// An access_denied alert, as `reject` sends it.
fn denied(reply: &[u8]) -> bool {
    reply.first() == Some(&21) && reply.last() == Some(&49)
}

async fn start(route: &str) -> anyhow::Result<(Running, String)> {
    let (upstream, _) = backend::raw(b"A").await?;
    let policy =
        format!(r#"routes = [ {{ match = "www.test", upstream = "{upstream}", {route} }} ]"#);
    let limen = Running::with_static_routes(&policy, "").await?;
    Ok((limen, policy))
}

/// One connection for `www.test`, read to its end.
async fn ask(limen: SocketAddr) -> anyhow::Result<Vec<u8>> {
    let mut client = TcpStream::connect(limen).await?;
    client
        .write_all(&limen::offline::explain::synthesise("www.test", &[])?)
        .await?;
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut reply)).await??;
    Ok(reply)
}

/// A connection that got its reply and stays open.
async fn hold(limen: SocketAddr) -> anyhow::Result<(Vec<u8>, TcpStream)> {
    let mut client = TcpStream::connect(limen).await?;
    client
        .write_all(&limen::offline::explain::synthesise("www.test", &[])?)
        .await?;
    let mut first = [0u8; 1];
    tokio::time::timeout(WAIT, client.read_exact(&mut first)).await??;
    if first[0] == b'A' {
        return Ok((first.to_vec(), client));
    }
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await??;
    Ok(([&first[..], &rest].concat(), client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_lets_the_burst_through_then_the_rate() -> anyhow::Result<()> {
    let (limen, _) = start("rate = { per_second = 5, burst = 5 }").await?;
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..10 {
        at_once.spawn(ask(limen.addr));
    }
    let mut replies = Vec::new();
    while let Some(reply) = at_once.join_next().await {
        replies.push(reply??);
    }
    let passed = replies.iter().filter(|r| r[..] == b"A"[..]).count();
    assert_eq!(passed, 5, "{replies:?}");
    assert!(replies.iter().all(|r| r[..] == b"A"[..] || denied(r)));
    let limited = [("kind", "rate")];
    assert_eq!(limen.counter(names::POLICY_LIMITED, &limited), 5);
    // A second later the bucket holds 5 again, and no more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut passed = 0;
    for _ in 0..6 {
        passed += usize::from(ask(limen.addr).await?[..] == b"A"[..]);
    }
    assert_eq!(passed, 5);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_slots_free_when_connections_end_and_survive_a_swap() -> anyhow::Result<()> {
    let (limen, policy) = start("max_connections = 2").await?;
    let (a, first) = hold(limen.addr).await?;
    let (b, second) = hold(limen.addr).await?;
    assert_eq!((&a[..], &b[..]), (&b"A"[..], &b"A"[..]));
    assert!(
        denied(&ask(limen.addr).await?),
        "a third connection got a slot"
    );
    // One ends: its slot is free again (once limen has seen the close).
    drop(first);
    let (_, third) = eventually(
        WAIT,
        "the ended connection's slot to be freed",
        async || hold(limen.addr).await,
        |(reply, _)| reply[..] == b"A"[..],
    )
    .await?;
    // A new version of the policy (another route) sees the same two slots taken.
    let module = std::fs::read(guests::example("static-routes"))?;
    let next: toml::Table = toml::from_str(&format!(
        "{}\n",
        policy.replace(" ]", r#", { match = "other.test", reject = "close" } ]"#)
    ))?;
    let answer = limen
        .control
        .swap(module.into(), Some(serde_json::to_string(&next)?))
        .await;
    assert!(format!("{answer:?}").contains("Swapped"), "{answer:?}");
    assert!(denied(&ask(limen.addr).await?), "the swap forgot the slots");
    // Closed, so the stop need not wait out the shutdown grace.
    drop((second, third));
    limen.stop().await
}

/// A swap while live traffic keeps a route's rate spent: the candidate's
/// warm-up and `[[policy.expect]]` self-test decide on limits of their own,
/// so its sample for that route passes. (On the live bucket it would be
/// refused, "expected passthrough, got reject", and the swap with it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_passes_its_self_test_while_live_traffic_spends_the_rate() -> anyhow::Result<()> {
    let (upstream, _) = backend::raw(b"A").await?;
    let policy = format!(
        r#"routes = [ {{ match = "www.test", upstream = "{upstream}", rate = {{ per_second = 1, burst = 1 }} }} ]"#
    );
    let expect =
        format!("[[policy.expect]]\nsni = \"www.test\"\ndecision = \"passthrough:{upstream}\"");
    let limen = Running::with_static_routes(&policy, &expect).await?;
    // A connection every 10 ms (at most 3,000) keeps the bucket empty.
    let spending = Arc::new(AtomicBool::new(true));
    let spender = {
        let (spending, addr) = (spending.clone(), limen.addr);
        tokio::spawn(async move {
            let mut denied_seen = 0;
            for _ in 0..3_000 {
                if !spending.load(Ordering::Relaxed) {
                    break;
                }
                denied_seen += usize::from(ask(addr).await.is_ok_and(|r| denied(&r)));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            denied_seen
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let module = std::fs::read(guests::example("static-routes"))?;
    // A new version (one more route), so the swap is not "unchanged".
    let next = policy.replace(" ]", r#", { match = "other.test", reject = "close" } ]"#);
    let config: toml::Table = toml::from_str(&next)?;
    let answer = limen
        .control
        .swap(module.into(), Some(serde_json::to_string(&config)?))
        .await;
    spending.store(false, Ordering::Relaxed);
    assert!(spender.await? > 0, "the live bucket was never spent");
    assert!(format!("{answer:?}").contains("Swapped"), "{answer:?}");
    limen.stop().await
}
