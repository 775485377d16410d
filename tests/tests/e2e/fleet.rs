//! A fleet from one source of truth: a real etcd (Debian's `etcd-server`,
//! installed by `.ci/run` when absent), `limen run` processes following one
//! prefix, `limen publish` and `limen fleet status` as an operator runs them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use limen_e2e::cli::{Ran, limen};
use limen_e2e::etcd::Etcd;
use limen_e2e::harness::sourced_config;
use limen_e2e::wait::eventually;
use limen_e2e::{backend, guests};

use crate::common::{ask, config_file, hello, scratch};
use crate::process::Process;

pub(crate) const PREFIX: &str = "/limen/test";

/// How long a change may take to reach every instance.
pub(crate) const REACH: Duration = Duration::from_secs(60);

/// `limen publish` of `module` routing everything to `upstream`.
async fn publish(etcd: &Etcd, module: &Path, upstream: SocketAddr) -> anyhow::Result<Ran> {
    publish_with(etcd, module, upstream, "").await
}

/// [`publish`], with `extra` lines in the policy's `[config]`.
async fn publish_with(
    etcd: &Etcd,
    module: &Path,
    upstream: SocketAddr,
    extra: &str,
) -> anyhow::Result<Ran> {
    let config = scratch("policy.toml");
    std::fs::write(
        &config,
        format!(
            "[config]\ndefault = \"{upstream}\"\n{extra}\n\n[[expect]]\nsni = \"any.test\"\n\
             decision = \"passthrough:{upstream}\"\n"
        ),
    )?;
    let (endpoint, module) = (etcd.endpoint(), module.display().to_string());
    limen([
        "publish", "--etcd", &endpoint, "--prefix", PREFIX, "--module", &module,
    ])
    .arg("--config")
    .arg(config)
    .finish()
    .await
}

pub(crate) async fn fleet_status(etcd: &Etcd) -> anyhow::Result<Ran> {
    limen([
        "fleet",
        "status",
        "--etcd",
        &etcd.endpoint(),
        "--prefix",
        PREFIX,
    ])
    .finish()
    .await
}

/// One `limen run` following the prefix: its process and its listener.
pub(crate) struct Instance {
    pub(crate) process: Process,
    pub(crate) addr: SocketAddr,
    config: PathBuf,
}

pub(crate) async fn instance(etcd: &Etcd, id: &str, state: &Path) -> anyhow::Result<Instance> {
    start(instance_config(etcd, id, state)).await
}

/// An instance's config file: one listener, `[source.etcd]`, an admin socket.
fn instance_config(etcd: &Etcd, id: &str, state: &Path) -> PathBuf {
    let extra = format!(
        "[source.etcd]\nendpoints = [\"{}\"]\nprefix = \"{PREFIX}\"\nstate_dir = \"{}\"\nid = \"{id}\"\n\n\
         [admin]\nsocket = \"{}\"\n",
        etcd.endpoint(),
        state.display(),
        scratch("admin.sock").display(),
    );
    config_file(&sourced_config("", &extra))
}

pub(crate) async fn start(config: PathBuf) -> anyhow::Result<Instance> {
    let text = std::fs::read_to_string(&config)?;
    let admin = text
        .lines()
        .find_map(|l| l.strip_prefix("socket = "))
        .context("admin socket")?
        .trim_matches('"');
    let process = Process::start(&config, PathBuf::from(admin))?;
    let status = process.generation(1).await?;
    let addr = status.listeners[0].1.parse()?;
    Ok(Instance {
        process,
        addr,
        config,
    })
}

/// Wait until every instance runs the module with `sha256`.
pub(crate) async fn all_live(instances: &[&Instance], sha256: &str) -> anyhow::Result<()> {
    let running = async || {
        let mut running = Vec::new();
        for instance in instances {
            running.push(instance.process.status().await?.module_sha256);
        }
        Ok(running)
    };
    let what = format!("every instance to run {sha256}");
    eventually(REACH, &what, running, |running| {
        running.iter().all(|s| s == sha256)
    })
    .await
    .with_context(|| logs(instances))?;
    Ok(())
}

/// Each instance's config and log, for a failure message.
fn logs(instances: &[&Instance]) -> String {
    let each = instances
        .iter()
        .map(|i| format!("{}:\n{}", i.config.display(), i.process.log()));
    each.collect::<Vec<_>>().join("\n")
}

/// Wait until every instance routes `small-a.test` to the backend that
/// answers `want`, at most `within`.
pub(crate) async fn all_route(
    instances: &[&Instance],
    want: &[u8],
    within: Duration,
) -> anyhow::Result<()> {
    let hello = hello("small-a.test.bin");
    let replies = async || {
        let mut replies = Vec::new();
        for instance in instances {
            replies.push(ask(instance.addr, &hello).await?);
        }
        Ok(replies)
    };
    let what = format!(
        "every instance to route to {}",
        String::from_utf8_lossy(want)
    );
    eventually(within, &what, replies, |replies| {
        replies.iter().all(|r| r == want)
    })
    .await
    .with_context(|| logs(instances))?;
    Ok(())
}

pub(crate) fn sha256(path: &Path) -> anyhow::Result<String> {
    Ok(limen::control::fleet::layout::hash(&std::fs::read(path)?))
}

/// Connections through every instance until `stop`: how many were routed
/// (got `A` or `B`) and how many were not.
fn traffic(addrs: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (ok2, failed2) = (ok.clone(), failed.clone());
    tokio::spawn(async move {
        let hello = hello("small-a.test.bin");
        // Bounded: at most 20,000 connections, whatever the test does.
        for _ in 0..20_000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            for addr in &addrs {
                match ask(*addr, &hello).await {
                    Ok(reply) if reply == b"A" || reply == b"B" => {
                        ok2.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => failed2.fetch_add(1, Ordering::Relaxed),
                };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_goes_live_on_every_instance_and_a_bad_one_on_none() -> anyhow::Result<()> {
    let etcd = Etcd::start(&scratch("etcd")).await?;
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    let module = guests::example("static-routes");
    let out = publish(&etcd, &module, a).await?;
    assert!(out.ok, "{}", out.text());
    let mut fleet = Vec::new();
    for n in 0..3 {
        fleet.push(instance(&etcd, &format!("limen-{n}"), &scratch("state")).await?);
    }
    let refs: Vec<&Instance> = fleet.iter().collect();
    all_live(&refs, &sha256(&module)?).await?;
    for i in &fleet {
        assert_eq!(ask(i.addr, &hello("small-a.test.bin")).await?, b"A");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = traffic(fleet.iter().map(|i| i.addr).collect(), stop.clone());

    // A new policy: same module, another config (another version).
    let published = Instant::now();
    let out = publish(&etcd, &module, b).await?;
    assert!(out.ok, "{}", out.text());
    assert!(
        out.text().contains("\"uploaded\": false"),
        "stored once: {}",
        out.text()
    );
    all_route(&refs, b"B", REACH.saturating_sub(published.elapsed())).await?;
    println!(
        "publish to the last of {} instances live: {} ms",
        fleet.len(),
        published.elapsed().as_millis()
    );
    let out = fleet_status(&etcd).await?;
    assert!(out.ok, "{}", out.text());
    let table = out.text();
    let versions: std::collections::HashSet<&str> = table
        .lines()
        .filter(|l| l.starts_with("limen-"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(versions.len(), 1, "{table}");

    // A SIGHUP reload of an instance keeps etcd's policy (not the file's).
    fleet[0].process.hangup();
    fleet[0].process.generation(2).await?;
    assert_eq!(ask(fleet[0].addr, &hello("small-a.test.bin")).await?, b"B");

    // A broken module is refused by `publish` itself: nothing is written.
    let broken = scratch("broken.wasm");
    std::fs::write(&broken, wat::parse_str("(module)")?)?;
    let out = publish(&etcd, &broken, a).await?;
    assert!(!out.ok && out.text().contains("P00"), "{}", out.text());
    assert!(fleet_status(&etcd).await?.ok);

    // One written to etcd by hand: every instance refuses it and says so;
    // the old policy serves on.
    hand_written(&etcd, &std::fs::read(&broken)?).await?;
    let refused = |out: &Ran| out.text().lines().filter(|l| l.contains("P002")).count();
    let out = eventually(
        REACH,
        "every instance to report P002",
        async || fleet_status(&etcd).await,
        |out| refused(out) == fleet.len(),
    )
    .await?;
    assert!(!out.ok, "disagreement must exit 1");
    for i in &fleet {
        assert_eq!(ask(i.addr, &hello("small-a.test.bin")).await?, b"B");
    }
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a connection was not routed"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);
    Ok(())
}

/// Store `module` and point `live` at it, as a hand (or a bug) would,
/// without `publish`'s check.
async fn hand_written(etcd: &Etcd, module: &[u8]) -> anyhow::Result<()> {
    use limen::control::fleet::layout::{Keys, LiveRecord};
    let source = limen::state::config::SourceConfig {
        endpoints: vec![etcd.endpoint()],
        prefix: PREFIX.into(),
        state_dir: scratch("unused"),
        id: None,
        user: None,
        tls: None,
    };
    let keys = Keys::new(PREFIX);
    let mut client = limen::control::fleet::store::connect(&source).await?;
    let (hash, _) = limen::control::fleet::store::upload(&mut client, &keys, module).await?;
    let live = LiveRecord {
        module: hash,
        size: module.len() as u64,
        config: serde_json::json!({}),
        expect: Vec::new(),
        published_at: 0,
    };
    limen::control::fleet::store::publish(&mut client, &keys, &live).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_limen_serves_on_starts_from_state_dir_and_catches_up() -> anyhow::Result<()> {
    let mut etcd = Etcd::start(&scratch("etcd")).await?;
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    let module = guests::example("static-routes");
    assert!(publish(&etcd, &module, a).await?.ok);
    let first = instance(&etcd, "limen-0", &scratch("state")).await?;
    let second = instance(&etcd, "limen-1", &scratch("state")).await?;
    all_live(&[&first, &second], &sha256(&module)?).await?;

    etcd.kill();
    for i in [&first, &second] {
        assert_eq!(ask(i.addr, &hello("small-a.test.bin")).await?, b"A");
    }
    // Restarted while etcd is down: from its state_dir.
    let config = second.config.clone();
    drop(second);
    let second = start(config).await?;
    assert!(
        second.process.log().contains("source.unreachable"),
        "{}",
        second.process.log()
    );
    assert_eq!(ask(second.addr, &hello("small-a.test.bin")).await?, b"A");
    // A new instance with an empty state_dir has nothing to start with.
    let fresh = instance_config(&etcd, "limen-2", &scratch("state"));
    let out = limen(["run", "--config"]).arg(&fresh).finish().await?;
    assert!(!out.ok && out.text().contains("E060"), "{}", out.text());
    // `limen check` does not need etcd: the policy is publish's to check.
    let out = limen(["check", "--config"]).arg(&fresh).finish().await?;
    assert!(out.ok, "{}", out.text());

    // etcd back; a publish made now reaches both.
    etcd.restart().await?;
    let out = publish(&etcd, &module, b).await?;
    assert!(out.ok, "{}", out.text());
    all_route(&[&first, &second], b"B", REACH).await?;
    assert!(first.process.log().contains("source.disconnected"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_18_mb_python_module_travels_in_chunks_intact() -> anyhow::Result<()> {
    let etcd = Etcd::start(&scratch("etcd")).await?;
    let (a, _) = backend::raw(b"A").await?;
    let module = guests::example("regex-services-py");
    let size = std::fs::metadata(&module)?.len();
    assert!(size > 16 << 20, "{size} bytes");
    let out = publish_with(&etcd, &module, a, "rules = []").await?;
    assert!(out.ok, "{}", out.text());
    assert!(out.text().contains("\"chunks\": 18"), "{}", out.text());
    let one = instance(&etcd, "limen-py", &scratch("state")).await?;
    all_live(&[&one], &sha256(&module)?).await?;
    assert_eq!(ask(one.addr, &hello("small-a.test.bin")).await?, b"A");
    Ok(())
}
