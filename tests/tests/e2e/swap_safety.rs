//! Candidates that must not go live, refused each way with the reason
//! reported to `limen swap`; and memory over many swaps.

use std::path::Path;

use limen::control::admin::client;
use limen::control::admin::protocol::{Answer, Request};
use limen_e2e::backend;
use limen_e2e::cli::limen;
use limen_e2e::guests::{self, component_of_world, policy_component, route_body};
use limen_e2e::harness::config;

use crate::common::{ask, config_file, scratch};
use crate::process::Process;
use crate::swap::{TwoPolicies, start_with_admin};

/// `limen swap` (the real binary) against `admin`: (success, stdout, stderr).
async fn limen_swap(
    admin: &Path,
    module: &[u8],
    config_json: Option<String>,
) -> (bool, String, String) {
    let file = scratch("candidate.wasm");
    std::fs::write(&file, module).expect("write candidate");
    let mut command = limen(["swap", "--admin"])
        .arg(admin)
        .arg("--module")
        .arg(&file);
    if let Some(json) = config_json {
        command = command.arg("--config-json").arg(json);
    }
    let out = command.finish().await.expect("run limen swap");
    (out.ok, out.stdout, out.stderr)
}

/// What is swapped in, its config JSON, and what the refusal must say.
type Case<'a> = (&'a str, Vec<u8>, Option<String>, Vec<&'a str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_candidates_are_refused_each_way_and_the_old_policy_serves() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    // The self-test pins both names to A; the live static-routes passes it.
    let expect = format!(
        "[[policy.expect]]\nsni = \"t.test\"\ndecision = \"passthrough:{a}\"\n\
         [[policy.expect]]\nsni = \"panic.test\"\ndecision = \"passthrough:{a}\""
    );
    let (limen, admin) = start_with_admin(a, &expect).await?;
    let hello = limen::offline::explain::synthesise("t.test", &[])?;
    let read = |name| std::fs::read(guests::example(name)).expect("example guest");
    let disagreement = format!("expected passthrough:{a}, got passthrough:{b}");
    let cases: Vec<Case> = vec![
        (
            "not a component",
            wat::parse_str("(module)")?,
            None,
            vec!["P002"],
        ),
        (
            "another world",
            component_of_world(
                "package test:other; world other { export hello: func() -> u32; }",
                "other",
                r#"(module (func (export "hello") (result i32) (i32.const 7)))"#,
            )?,
            None,
            vec!["P003"],
        ),
        (
            "init fails",
            read("static-routes"),
            Some(r#"{"nope":1}"#.into()),
            vec!["P004", "nope"],
        ),
        (
            "traps in route on the self-test",
            policy_component(&route_body("unreachable", ""))?,
            None,
            vec!["P005", "t.test", "P010"],
        ),
        (
            "disagrees with the self-test",
            read("regex-services"),
            Some(format!(
                r#"{{"rules":[{{"pattern":"^t\\.test$","upstream":"{b}"}}]}}"#
            )),
            vec!["P005", "t.test", &disagreement],
        ),
    ];
    let n = cases.len() as u64;
    for (what, module, json, reasons) in cases {
        let (ok, stdout, stderr) = limen_swap(&admin, &module, json).await;
        assert!(!ok, "{what}: limen swap succeeded: {stdout}");
        for reason in reasons {
            assert!(
                stderr.contains(reason),
                "{what}: `{reason}` not in: {stderr}"
            );
        }
        let answer: serde_json::Value = serde_json::from_str(&stdout)?;
        assert_eq!(answer["result"], "refused", "{what}: {stdout}");
        assert_eq!(
            ask(limen.addr, &hello).await?,
            b"A",
            "{what}: the old policy must serve"
        );
    }
    assert_eq!(
        limen.counter(
            "limen_policy_swaps_total",
            &[("trigger", "admin"), ("outcome", "refused")]
        ),
        n
    );
    // A good candidate still goes live afterwards.
    let (ok, stdout, stderr) = limen_swap(
        &admin,
        &read("regex-services"),
        Some(format!(
            r#"{{"default":"{b}","rules":[{{"pattern":"^(t|panic)\\.test$","upstream":"{a}"}}]}}"#
        )),
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("\"swapped\"") && stdout.contains("\"samples\": 2"),
        "{stdout}"
    );
    limen.stop().await
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The bound this test states: after a warm-up, 200 more swaps may add at
/// most this much resident memory (old policies, their instances and their
/// compiled code must be freed; allocator slack is allowed for).
const SWAP_GROWTH_BOUND_KIB: u64 = 8 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_over_200_swaps() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    let policies = TwoPolicies::new(a, b)?;
    let admin = scratch("admin.sock");
    let toml = config(
        &guests::example("static-routes"),
        &format!(r#"routes = [ {{ match = "t.test", upstream = "{a}" }} ]"#),
        &format!("cache = \"{}\"", scratch("cache").display()),
        &format!("[admin]\nsocket = \"{}\"", admin.display()),
    );
    let limen = Process::start(&config_file(&toml), admin.clone())?;
    limen.generation(1).await?;
    for k in 0..20 {
        policies.swap(&admin, k % 2 == 1).await?;
    }
    let warm = rss_kib(limen.pid());
    for k in 0..200 {
        policies.swap(&admin, k % 2 == 1).await?;
    }
    let after = rss_kib(limen.pid());
    eprintln!("RSS after 20 swaps: {warm} KiB; after 200 more: {after} KiB");
    anyhow::ensure!(
        after <= warm + SWAP_GROWTH_BOUND_KIB,
        "RSS grew from {warm} KiB to {after} KiB over 200 swaps (bound {SWAP_GROWTH_BOUND_KIB} KiB)"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_required_and_a_refused_swap_gets_its_answer() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let token_file = scratch("admin.token");
    limen_e2e::pki::write_private(&token_file, b"0123456789abcdef-secret\n")?;
    let admin = scratch("admin.sock");
    let toml = config(
        &guests::example("static-routes"),
        &format!(r#"default = "{a}""#),
        "",
        &format!(
            "[admin]\nsocket = \"{}\"\ntoken_file = \"{}\"",
            admin.display(),
            token_file.display()
        ),
    );
    let limen = limen_e2e::harness::Running::start(&toml).await?;
    let endpoint = admin.to_str().expect("utf-8");
    let status = client::call(endpoint, None, Request::Status, &[]).await?;
    assert!(
        matches!(&status, Answer::Denied { error } if error.contains("token")),
        "{status:?}"
    );
    // A 2 MB module with a wrong token: the refusal arrives, not a reset.
    let module = vec![0u8; 2 << 20];
    let swap = Request::Swap {
        module_len: module.len(),
        config_json: None,
        shadow: false,
        canary: None,
    };
    let answer = client::call(
        endpoint,
        Some("wrong-token-wrong-token".into()),
        swap,
        &module,
    )
    .await?;
    assert!(
        matches!(&answer, Answer::Denied { error } if error.contains("token")),
        "{answer:?}"
    );
    let status = client::call(
        endpoint,
        Some("0123456789abcdef-secret".into()),
        Request::Status,
        &[],
    )
    .await?;
    assert!(matches!(status, Answer::Status(_)), "{status:?}");
    limen.stop().await
}
