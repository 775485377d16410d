//! A candidate policy shadowed on live traffic (`limen swap --shadow`): it
//! decides every connection again off the path, the counts are exact, live
//! decisions never change, a candidate that traps or spins never fails a
//! live connection, and `--promote` / `--abort` end the trial.

use std::net::SocketAddr;
use std::sync::Arc;

use limen::control::admin::protocol::Answer;
use limen::observe::metrics::names;
use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};

use crate::common::ask;

/// `count` connections for `sni`, each of which must get `reply`.
async fn asks(limen: SocketAddr, sni: &str, count: usize, reply: &[u8]) -> anyhow::Result<()> {
    let hello = limen::offline::explain::synthesise(sni, &[])?;
    for _ in 0..count {
        anyhow::ensure!(
            ask(limen, &hello).await? == reply,
            "{sni}: the live decision changed"
        );
    }
    Ok(())
}

/// Wait until the shadow has counted `want` (same, different, failed,
/// dropped), then check each.
async fn counts(limen: &Running, want: [u64; 4]) -> anyhow::Result<()> {
    let outcomes = ["same", "different", "failed", "dropped"];
    let total: u64 = want.iter().sum();
    // The shadow runs at the lowest priority: on a loaded test machine it
    // may lag well behind the live connections.
    let within = std::time::Duration::from_secs(60);
    let _ = limen
        .counter_reaches_within(within, names::POLICY_SHADOW, &[], total)
        .await;
    let got = outcomes.map(|o| limen.counter(names::POLICY_SHADOW, &[("outcome", o)]));
    anyhow::ensure!(got == want, "shadow counts {got:?}, expected {want:?}");
    Ok(())
}

fn module(name: &str) -> anyhow::Result<Arc<[u8]>> {
    Ok(std::fs::read(guests::example(name))?.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadowed_candidate_is_counted_exactly_and_changes_no_live_decision() -> anyhow::Result<()>
{
    let (a, _ra) = backend::raw(b"A").await?;
    let (b, _rb) = backend::raw(b"B").await?;
    let (c, _rc) = backend::raw(b"C").await?;
    let routes = format!(
        "default = \"{a}\"\nroutes = [ {{ match = \"a.test\", upstream = \"{a}\" }}, \
         {{ match = \"b.test\", upstream = \"{b}\" }} ]"
    );
    let limen = Running::with_static_routes(&routes, "[metrics]\nbind = \"127.0.0.1:0\"").await?;
    // b.test goes elsewhere; bad.test to an address the allow-list refuses.
    let candidate = format!(
        r#"{{"default":"{a}","routes":[{{"match":"a.test","upstream":"{a}"}},{{"match":"b.test","upstream":"{c}"}},{{"match":"bad.test","upstream":"10.255.0.1:443"}}]}}"#
    );
    let answer = limen
        .control
        .shadow(module("static-routes")?, Some(candidate.clone()))
        .await;
    anyhow::ensure!(matches!(answer, Answer::Shadowing(_)), "{answer:?}");
    asks(limen.addr, "a.test", 5, b"A").await?;
    asks(limen.addr, "b.test", 3, b"B").await?;
    asks(limen.addr, "bad.test", 2, b"A").await?;
    asks(limen.addr, "other.test", 2, b"A").await?;
    counts(&limen, [7, 3, 2, 0]).await?;
    // Aborted: nothing more is counted, and nothing is left to promote.
    let answer = limen.control.abort().await;
    anyhow::ensure!(matches!(answer, Answer::Aborted { .. }), "{answer:?}");
    asks(limen.addr, "b.test", 2, b"B").await?;
    let answer = limen.control.promote().await;
    anyhow::ensure!(matches!(answer, Answer::Denied { .. }), "{answer:?}");
    // Shadowed again and promoted: now it decides.
    let answer = limen
        .control
        .shadow(module("static-routes")?, Some(candidate))
        .await;
    anyhow::ensure!(matches!(answer, Answer::Shadowing(_)), "{answer:?}");
    let answer = limen.control.promote().await;
    anyhow::ensure!(matches!(answer, Answer::Swapped(_)), "{answer:?}");
    asks(limen.addr, "b.test", 2, b"C").await?;
    counts(&limen, [7, 3, 2, 0]).await?;
    limen.stop().await
}

/// The shadow's `take`s come from a table of its own: a candidate with
/// the live policy's `rate` on the same key leaves the live bucket whole.
/// (Sharing it, the shadow would spend the live bucket: the second
/// connection's shadow already found it empty.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_takes_nothing_from_the_live_limits() -> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let live = format!(
        "routes = [ {{ match = \"a.test\", upstream = \"{a}\", rate = {{ per_second = 1, burst = 3 }} }} ]"
    );
    let limen = Running::with_static_routes(&live, "[metrics]\nbind = \"127.0.0.1:0\"").await?;
    let candidate = format!(
        r#"{{"routes":[{{"match":"a.test","upstream":"{a}","rate":{{"per_second":1,"burst":3}}}}]}}"#
    );
    let answer = limen
        .control
        .shadow(module("static-routes")?, Some(candidate))
        .await;
    anyhow::ensure!(matches!(answer, Answer::Shadowing(_)), "{answer:?}");
    for n in 1..=3 {
        asks(limen.addr, "a.test", 1, b"A").await?;
        // Its shadow decided before the next connection comes.
        counts(&limen, [n, 0, 0, 0]).await?;
    }
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_traps_or_spins_fails_no_live_connection() -> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let limen = Running::with_static_routes(
        &format!("default = \"{a}\"\nroutes = []"),
        "[metrics]\nbind = \"127.0.0.1:0\"",
    )
    .await?;
    let candidate = format!(r#"{{"upstream":"{a}"}}"#);
    let answer = limen
        .control
        .shadow(module("misbehave")?, Some(candidate))
        .await;
    anyhow::ensure!(matches!(answer, Answer::Shadowing(_)), "{answer:?}");
    // It panics (a trap), spins (fuel or deadline), names an address the
    // allow-list refuses (limen would refuse it), or agrees.
    asks(limen.addr, "panic.test", 3, b"A").await?;
    asks(limen.addr, "loop.test", 2, b"A").await?;
    asks(limen.addr, "open.test", 2, b"A").await?;
    asks(limen.addr, "fine.test", 3, b"A").await?;
    counts(&limen, [3, 0, 7, 0]).await?;
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_shadow_in_the_config_runs_from_the_start_until_a_reload_removes_it()
-> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let (c, _rc) = backend::raw(b"C").await?;
    let module = guests::example("static-routes");
    let without = config(
        &module,
        &format!("default = \"{a}\"\nroutes = []"),
        "",
        "[metrics]\nbind = \"127.0.0.1:0\"",
    );
    let with = format!(
        "{without}\n[policy.shadow]\nmodule = \"{}\"\nconfig = {{ default = \"{c}\", routes = [] }}\n",
        module.display()
    );
    let limen = Running::start(&with).await?;
    // Prepared once limen accepts: ask until the shadow counts one.
    let hello = limen::offline::explain::synthesise("a.test", &[])?;
    let mut first = 0;
    while limen.counter(names::POLICY_SHADOW, &[]) == 0 && first < 200 {
        anyhow::ensure!(ask(limen.addr, &hello).await? == b"A");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        first += 1;
    }
    // Any sample still queued is decided before counting from here.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = limen.counter(names::POLICY_SHADOW, &[("outcome", "different")]);
    anyhow::ensure!(before > 0, "the configured shadow never started");
    asks(limen.addr, "a.test", 3, b"A").await?;
    counts(&limen, [0, before + 3, 0, 0]).await?;
    let answer = limen
        .control
        .reload(limen::Config::from_toml(&without)?)
        .await;
    anyhow::ensure!(matches!(answer, Answer::Reloaded(_)), "{answer:?}");
    asks(limen.addr, "a.test", 2, b"A").await?;
    // Ended with the reload: nothing more is counted.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    counts(&limen, [0, before + 3, 0, 0]).await?;
    limen.stop().await
}
