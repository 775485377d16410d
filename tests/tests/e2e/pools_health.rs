//! Pools' members going down and up: a member killed and brought back
//! under load (retries mask it, the active check marks it down and up),
//! passive ejection, a pool with no member up getting the fail mode, and
//! health kept across a reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use limen::observe::metrics::names;
use limen_e2e::harness::Running;
use tokio::net::TcpListener;

use crate::common::WAIT;
use crate::pools::{Member, ask, members, start, toml};

/// Wait (at most `limit`) until the member's health gauge reads `value`;
/// how long that took.
async fn healthy_becomes(
    limen: &Running,
    member: &Member,
    value: u64,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let addr = member.addr.to_string();
    let labels = [("pool", "web"), ("member", addr.as_str())];
    limen
        .gauge_reads(limit, names::UPSTREAM_MEMBER_HEALTHY, &labels, value)
        .await?;
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_under_load_costs_no_client_an_error() -> anyhow::Result<()> {
    let (a, mut b, c) = (
        Member::start(1).await?,
        Member::start(2).await?,
        Member::start(3).await?,
    );
    let pool = format!(
        "[upstreams.pools.web]\nmembers = [{}]\nretries = 2\n\
         [upstreams.pools.web.health]\ncheck = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n\
         rise = 2\nfall = 2\neject_after = 0",
        members(&[&a, &b, &c])
    );
    let limen = start(&pool, "").await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new([0, 1, 2, 3].map(|_| AtomicUsize::new(0)));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (stop, seen, addr) = (stop.clone(), seen.clone(), limen.addr);
        clients.spawn(async move {
            let mut failures = Vec::new();
            // Bounded: at most 20,000 connections per client.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match ask(addr, None).await {
                    Ok(id) => _ = seen[usize::from(id)].fetch_add(1, Ordering::Relaxed),
                    Err(error) => failures.push(error.to_string()),
                }
            }
            failures
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill();
    let down = healthy_becomes(&limen, &b, 0, Duration::from_secs(5)).await?;
    // interval × fall is 400 ms; the kill may fall just after a check, and
    // a loaded test machine adds scheduling slack.
    assert!(
        down < Duration::from_millis(700),
        "marked down after {down:?}"
    );
    let during = seen[2].load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen[2].load(Ordering::Relaxed),
        during,
        "a down member got traffic"
    );
    b.revive().await?;
    let up = healthy_becomes(&limen, &b, 1, Duration::from_secs(5)).await?;
    assert!(up < Duration::from_millis(700), "marked up after {up:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    while let Some(done) = clients.join_next().await {
        failures.extend(done?);
    }
    // Refused connects (every third connection until the check marks the
    // member down) are retried, and so are the connections its kernel had
    // already accepted when its listener closed (reset with the hello
    // sent, before the member's first byte): no client sees either.
    assert!(failures.is_empty(), "client-visible failures: {failures:?}");
    assert!(
        seen[2].load(Ordering::Relaxed) > during,
        "traffic did not return"
    );
    assert!(limen.counter(names::UPSTREAM_RETRIES, &[("pool", "web")]) > 0);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_retried_around_then_ejected() -> anyhow::Result<()> {
    let live = Member::start(1).await?;
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    let pool = format!(
        "[upstreams.pools.web]\nmembers = [\"{}\", \"{dead}\"]\nretries = 1\n\
         [upstreams.pools.web.health]\neject_after = 3\neject_for = \"1h\"",
        live.addr
    );
    let limen = start(&pool, "").await?;
    for _ in 0..40 {
        assert_eq!(ask(limen.addr, None).await?, 1);
    }
    // Round robin sent every other connection to the dead member until its
    // third failure ejected it; each was retried on the live one.
    let retries = limen.counter(names::UPSTREAM_RETRIES, &[("pool", "web")]);
    assert_eq!(retries, 3);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_no_member_up_gets_the_fail_mode() -> anyhow::Result<()> {
    let mut only = Member::start(1).await?;
    let pool = format!(
        "[upstreams.pools.web]\nmembers = [\"{}\"]\n\
         [upstreams.pools.web.health]\ncheck = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"50ms\"\nfall = 1",
        only.addr
    );
    let limen = start(&pool, r#"on_error = { reject = "access_denied" }"#).await?;
    assert_eq!(ask(limen.addr, None).await?, 1);
    only.kill();
    healthy_becomes(&limen, &only, 0, WAIT).await?;
    let started = Instant::now();
    let error = ask(limen.addr, None)
        .await
        .expect_err("a pool with no member up");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it must not hang"
    );
    // An access_denied (49) alert record.
    let reply = format!("{error}");
    assert!(
        reply.contains("[21, 3") && reply.ends_with("49]"),
        "{reply}"
    );
    let failures = [("reason", "no_member")];
    assert_eq!(limen.counter(names::UPSTREAM_FAILURES, &failures), 1);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_health_of_members_that_stay() -> anyhow::Result<()> {
    let mut dead = Member::start(1).await?;
    dead.kill();
    let live = Member::start(2).await?;
    // No retries: a connection sent to the dead member would fail.
    let pool = |members: &str| {
        format!(
            "[upstreams.pools.web]\nmembers = [{members}]\nretries = 0\n\
             [upstreams.pools.web.health]\ncheck = \"tcp\"\ninterval = \"300ms\"\ntimeout = \"100ms\"\n\
             fall = 2\neject_after = 0"
        )
    };
    let limen = start(&pool(&members(&[&dead])), "").await?;
    healthy_becomes(&limen, &dead, 0, WAIT).await?;
    let next = toml(&pool(&members(&[&dead, &live])), "");
    let answer = limen.control.reload(limen::Config::from_toml(&next)?).await;
    assert!(format!("{answer:?}").contains("Reloaded"), "{answer:?}");
    // Were the dead member's state lost, it would start up and take every
    // other connection until two checks (600 ms) took it down again.
    for _ in 0..20 {
        assert_eq!(ask(limen.addr, None).await?, 2);
    }
    // Without a check nothing would bring it back: a reload that drops the
    // check takes every member as up again.
    let unchecked = next.replace("check = \"tcp\"\n", "");
    let answer = limen
        .control
        .reload(limen::Config::from_toml(&unchecked)?)
        .await;
    assert!(format!("{answer:?}").contains("Reloaded"), "{answer:?}");
    let dead_member = dead.addr.to_string();
    let labels = [("pool", "web"), ("member", dead_member.as_str())];
    assert_eq!(limen.counter(names::UPSTREAM_MEMBER_HEALTHY, &labels), 1);
    limen.stop().await
}
