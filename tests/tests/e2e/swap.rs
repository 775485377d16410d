//! Hot swaps over the admin endpoint: under a steady load of new
//! connections, under a long-lived stream, and with candidates that must be
//! refused. Two real guests that route the same name differently:
//! `static-routes` sends `t.test` to backend A, `regex-services` to B.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use limen::control::admin::client;
use limen::control::admin::protocol::{Answer, Request, Swapped};
use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{WAIT, ask, echoes, scratch};

/// The two policies: (module bytes, init config) for A and for B.
pub(crate) struct TwoPolicies {
    pub(crate) a: (Vec<u8>, String),
    pub(crate) b: (Vec<u8>, String),
}

impl TwoPolicies {
    pub(crate) fn new(a: SocketAddr, b: SocketAddr) -> anyhow::Result<TwoPolicies> {
        let read = |name| std::fs::read(guests::example(name));
        Ok(TwoPolicies {
            a: (
                read("static-routes")?,
                format!(r#"{{"routes":[{{"match":"t.test","upstream":"{a}"}}]}}"#),
            ),
            b: (
                read("regex-services")?,
                format!(r#"{{"rules":[{{"pattern":"^t\\.test$","upstream":"{b}"}}]}}"#),
            ),
        })
    }

    /// Swap to A (`to_a`) or B; an error unless the swap went live.
    pub(crate) async fn swap(&self, admin: &Path, to_a: bool) -> anyhow::Result<Swapped> {
        let (module, json) = if to_a { &self.a } else { &self.b };
        match swap(admin, module, Some(json)).await? {
            Answer::Swapped(swapped) => Ok(swapped),
            other => anyhow::bail!("{other:?}"),
        }
    }
}

pub(crate) async fn swap(
    admin: &Path,
    module: &[u8],
    config_json: Option<&str>,
) -> anyhow::Result<Answer> {
    let request = Request::Swap {
        module_len: module.len(),
        config_json: config_json.map(Into::into),
        shadow: false,
        canary: None,
    };
    let admin = admin.to_str().expect("utf-8 path");
    Ok(client::call(admin, None, request, module).await?)
}

/// limen live with policy A, an admin socket and its own compile cache.
pub(crate) async fn start_with_admin(
    a: SocketAddr,
    extra_policy: &str,
) -> anyhow::Result<(Running, PathBuf)> {
    let admin = scratch("admin.sock");
    let toml = config(
        &guests::example("static-routes"),
        &format!(
            r#"default = "{a}"
routes = [ {{ match = "t.test", upstream = "{a}" }} ]"#
        ),
        &format!("cache = \"{}\"\n{extra_policy}", scratch("cache").display()),
        &format!("[admin]\nsocket = \"{}\"", admin.display()),
    );
    Ok((Running::start(&toml).await?, admin))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_swaps_under_load_route_by_the_policy_live_at_accept() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    let policies = TwoPolicies::new(a, b)?;
    // The tests of this binary run in parallel on a small machine: a 5 ms
    // wall-clock deadline (the default) can pass while the OS runs other
    // tests' threads, which is not what this test is about (faults.rs
    // tests deadlines).
    let (limen, admin) = start_with_admin(a, "timeout = \"250ms\"").await?;
    let hello = Arc::new(limen::offline::explain::synthesise("t.test", &[])?);
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (hello, done, addr) = (hello.clone(), done.clone(), limen.addr);
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let start = Instant::now();
                let reply = ask(addr, &hello).await;
                seen.push((start, Instant::now(), reply));
            }
            seen
        }));
    }
    // Each swap's window: it went live between sending and its answer.
    let mut swaps: Vec<(Instant, Instant, &[u8])> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for k in 1..=100 {
        let to_a = k % 2 == 0;
        let sent = Instant::now();
        let swapped = policies.swap(&admin, to_a).await?;
        // B is compiled once; from then on both come from the disk cache.
        let from = if k == 1 { "compiled" } else { "cache" };
        assert_eq!(swapped.compiled_from, from, "swap {k}");
        swaps.push((sent, Instant::now(), if to_a { b"A" } else { b"B" }));
        assert!(Instant::now() < deadline, "100 swaps took over 60 s");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    done.store(true, Ordering::Relaxed);
    let (mut total, mut certain, mut failed, mut wrong) = (0, 0, Vec::new(), Vec::new());
    for client in clients {
        for (start, end, reply) in client.await? {
            total += 1;
            let reply = match reply {
                Ok(reply) if reply == b"A" || reply == b"B" => reply,
                other => {
                    failed.push(format!("{other:?}"));
                    continue;
                }
            };
            // The policy live at accept is certain when no swap was under
            // way between the connect and the reply.
            let last = swaps.iter().rposition(|s| s.1 <= start);
            let live: &[u8] = last.map_or(b"A", |k| swaps[k].2);
            let next = swaps.get(last.map_or(0, |k| k + 1));
            if next.is_none_or(|s| end <= s.0) {
                certain += 1;
                if reply != live {
                    wrong.push(format!(
                        "{:?} at {:?}",
                        String::from_utf8_lossy(&reply),
                        start
                    ));
                }
            }
        }
    }
    let failures: Vec<String> = limen
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("limen_policy_failures_total"))
        .map(str::to_owned)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {total} failed ({failures:?}): {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        wrong.is_empty(),
        "{} misrouted: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert!(
        total >= 500 && certain * 2 >= total,
        "{certain} of {total} connections had a certain policy"
    );
    assert_eq!(
        limen.counter("limen_policy_swaps_total", &[("outcome", "applied")]),
        100
    );
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lived_stream_stays_byte_exact_across_50_swaps() -> anyhow::Result<()> {
    let echo = backend::echo().await?;
    let (b, _) = backend::raw(b"B").await?;
    let policies = TwoPolicies::new(echo, b)?;
    let (limen, admin) = start_with_admin(echo, "").await?;
    let hello = limen::offline::explain::synthesise("t.test", &[])?;
    let mut stream = TcpStream::connect(limen.addr).await?;
    stream.set_nodelay(true)?;
    echoes(&mut stream, &hello).await?;

    let swapping = Arc::new(AtomicBool::new(true));
    let swapper = {
        let swapping = swapping.clone();
        tokio::spawn(async move {
            for k in 1..=50 {
                policies.swap(&admin, k % 2 == 0).await?;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            swapping.store(false, Ordering::Relaxed);
            anyhow::Ok(policies)
        })
    };
    // Stream distinct chunks while the swaps run, and a few more after.
    let (mut round, mut during, mut after, mut bytes) = (0u32, 0, 0, 0usize);
    while after < 5 {
        let chunk: Vec<u8> = (0..16 * 1024u32)
            .map(|i| (i.wrapping_mul(31) ^ round.wrapping_mul(7)) as u8)
            .collect();
        echoes(&mut stream, &chunk)
            .await
            .with_context(|| format!("round {round}"))?;
        bytes += chunk.len();
        round += 1;
        if swapping.load(Ordering::Relaxed) {
            during += 1;
        } else {
            after += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    swapper.await??;
    assert_eq!(
        limen.counter("limen_policy_swaps_total", &[("outcome", "applied")]),
        50
    );
    // At least one round per swap on average: bytes flowed throughout.
    assert!(
        during >= 50,
        "only {during} of {round} rounds ({bytes} bytes) while swapping"
    );
    // The swaps ended on A (the echo): a new connection goes there too,
    // and the old one still ends cleanly.
    stream.shutdown().await?;
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await??;
    assert!(rest.is_empty());
    limen.stop().await
}
