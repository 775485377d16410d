//! A fleet from one source of truth: a real etcd (Debian's `etcd-server`,
//! installed by `.ci/run` when absent), `limen run` processes following one
//! prefix, `limen publish` and `limen fleet status` as an operator runs them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use limen::control::admin::protocol::Status;
use limen_e2e::etcd::Etcd;
use limen_e2e::{backend, guests};

use crate::common::{ask, hello, limen, scratch};
use crate::process::Process;

const PREFIX: &str = "/limen/test";

/// `limen ARGS`, off the runtime.
async fn cli(args: Vec<String>) -> anyhow::Result<Output> {
    Ok(tokio::task::spawn_blocking(move || Command::new(limen()).args(args).output()).await??)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `limen publish` of `module` routing everything to `upstream`.
async fn publish(etcd: &Etcd, module: &Path, upstream: SocketAddr) -> anyhow::Result<Output> {
    publish_with(etcd, module, upstream, "").await
}

/// [`publish`], with `extra` lines in the policy's `[config]`.
async fn publish_with(
    etcd: &Etcd,
    module: &Path,
    upstream: SocketAddr,
    extra: &str,
) -> anyhow::Result<Output> {
    let config = scratch("policy.toml");
    std::fs::write(
        &config,
        format!(
            "[config]\ndefault = \"{upstream}\"\n{extra}\n\n[[expect]]\nsni = \"any.test\"\n\
             decision = \"passthrough:{upstream}\"\n"
        ),
    )?;
    cli(vec![
        "publish".into(),
        "--etcd".into(),
        etcd.endpoint(),
        "--prefix".into(),
        PREFIX.into(),
        "--module".into(),
        module.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await
}

async fn fleet_status(etcd: &Etcd) -> anyhow::Result<Output> {
    cli(vec![
        "fleet".into(),
        "status".into(),
        "--etcd".into(),
        etcd.endpoint(),
        "--prefix".into(),
        PREFIX.into(),
    ])
    .await
}

/// One `limen run` following the prefix: its process and its listener.
struct Instance {
    process: Process,
    addr: SocketAddr,
    config: PathBuf,
}

async fn instance(etcd: &Etcd, id: &str, state: &Path) -> anyhow::Result<Instance> {
    start(instance_config(etcd, id, state)?).await
}

/// An instance's config file: one listener, `[source.etcd]`, an admin socket.
fn instance_config(etcd: &Etcd, id: &str, state: &Path) -> anyhow::Result<PathBuf> {
    let (config, admin) = (scratch("limen.toml"), scratch("admin.sock"));
    std::fs::write(
        &config,
        format!(
            r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[policy]
timeout = "250ms"

[source.etcd]
endpoints = ["{endpoint}"]
prefix = "{PREFIX}"
state_dir = "{state}"
id = "{id}"

[upstreams]
allow = ["127.0.0.1/32"]

[admin]
socket = "{admin}"
"#,
            endpoint = etcd.endpoint(),
            state = state.display(),
            admin = admin.display(),
        ),
    )?;
    Ok(config)
}

async fn start(config: PathBuf) -> anyhow::Result<Instance> {
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
async fn all_live(instances: &[&Instance], sha256: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for instance in instances {
        loop {
            let status: Status = instance.process.status().await?;
            if status.module_sha256 == sha256 {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "{} still runs {}:\n{}",
                instance.config.display(),
                status.module_sha256,
                instance.process.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(start.elapsed())
}

fn sha256(path: &Path) -> anyhow::Result<String> {
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
    let etcd = Etcd::start(&scratch("etcd"))?;
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    let module = guests::example("static-routes");
    let out = publish(&etcd, &module, a).await?;
    assert!(out.status.success(), "{}", text(&out));
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
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("\"uploaded\": false"),
        "stored once: {}",
        text(&out)
    );
    loop {
        let mut routed_b = 0;
        for i in &fleet {
            if ask(i.addr, &hello("small-a.test.bin")).await? == b"B" {
                routed_b += 1;
            }
        }
        if routed_b == fleet.len() {
            break;
        }
        anyhow::ensure!(
            published.elapsed() < Duration::from_secs(60),
            "not every instance routes to B"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "publish to the last of {} instances live: {} ms",
        fleet.len(),
        published.elapsed().as_millis()
    );
    let out = fleet_status(&etcd).await?;
    assert!(out.status.success(), "{}", text(&out));
    let table = text(&out);
    let versions: std::collections::HashSet<&str> = table
        .lines()
        .filter(|l| l.starts_with("limen-"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(versions.len(), 1, "{}", text(&out));

    // A SIGHUP reload of an instance keeps etcd's policy (not the file's).
    fleet[0].process.hangup();
    fleet[0].process.generation(2).await?;
    assert_eq!(ask(fleet[0].addr, &hello("small-a.test.bin")).await?, b"B");

    // A broken module is refused by `publish` itself: nothing is written.
    let broken = scratch("broken.wasm");
    std::fs::write(&broken, wat::parse_str("(module)")?)?;
    let out = publish(&etcd, &broken, a).await?;
    assert!(
        !out.status.success() && text(&out).contains("P00"),
        "{}",
        text(&out)
    );
    assert!(fleet_status(&etcd).await?.status.success());

    // One written to etcd by hand: every instance refuses it and says so;
    // the old policy serves on.
    hand_written(&etcd, &std::fs::read(&broken)?).await?;
    let start = Instant::now();
    loop {
        let out = fleet_status(&etcd).await?;
        let refused = text(&out).lines().filter(|l| l.contains("P002")).count();
        if refused == fleet.len() {
            assert!(!out.status.success(), "disagreement must exit 1");
            break;
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "{}", text(&out));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let mut etcd = Etcd::start(&scratch("etcd"))?;
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    let module = guests::example("static-routes");
    assert!(publish(&etcd, &module, a).await?.status.success());
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
    let fresh = instance_config(&etcd, "limen-2", &scratch("state"))?;
    let out = cli(vec![
        "run".into(),
        "--config".into(),
        fresh.display().to_string(),
    ])
    .await?;
    assert!(
        !out.status.success() && text(&out).contains("E060"),
        "{}",
        text(&out)
    );
    // `limen check` does not need etcd: the policy is publish's to check.
    let out = cli(vec![
        "check".into(),
        "--config".into(),
        fresh.display().to_string(),
    ])
    .await?;
    assert!(out.status.success(), "{}", text(&out));

    // etcd back; a publish made now reaches both.
    etcd.restart()?;
    let out = publish(&etcd, &module, b).await?;
    assert!(out.status.success(), "{}", text(&out));
    let start = Instant::now();
    for i in [&first, &second] {
        while ask(i.addr, &hello("small-a.test.bin")).await? != b"B" {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "{}",
                i.process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(first.process.log().contains("source.disconnected"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_18_mb_python_module_travels_in_chunks_intact() -> anyhow::Result<()> {
    let etcd = Etcd::start(&scratch("etcd"))?;
    let (a, _) = backend::raw(b"A").await?;
    let module = guests::example("regex-services-py");
    let size = std::fs::metadata(&module)?.len();
    assert!(size > 16 << 20, "{size} bytes");
    let out = publish_with(&etcd, &module, a, "rules = []").await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("\"chunks\": 18"), "{}", text(&out));
    let one = instance(&etcd, "limen-py", &scratch("state")).await?;
    all_live(&[&one], &sha256(&module)?).await?;
    assert_eq!(ask(one.addr, &hello("small-a.test.bin")).await?, b"A");
    Ok(())
}
