//! Policies in four languages: the Rust, Python, JavaScript and C builds of
//! `regex-services` route real TLS the same way and refuse the same configs;
//! Python and JavaScript loops are stopped and the fail mode applies; big
//! components are compiled once; growing heaps are recycled. (`cases.rs`
//! runs the four against one cases file.)

use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests, pki::Pki};

use crate::common::{scratch, tls_get};

/// The four implementations of one policy.
pub(crate) const REGEX_SERVICES: [&str; 4] = [
    "regex-services",
    "regex-services-py",
    "regex-services-js",
    "regex-services-c",
];

/// One rule routing `NAME.svc.test` to `NAME.internal:443`.
const SVC_RULE: &str =
    r#"{"rules":[{"pattern":"^(?<s>[a-z]+)\\.svc\\.test$","upstream":"{s}.internal:443"}]}"#;

/// `name`'s settings for an offline load: `config_json`, limen's default
/// fuel (it fits every language), a 1 s deadline (a loaded machine is no
/// reason to fail here).
pub(crate) fn offline(name: &str, config_json: &str) -> limen::state::config::PolicyConfig {
    let mut settings =
        limen::state::config::PolicyConfig::offline(guests::example(name), config_json.into());
    settings.timeout = std::time::Duration::from_secs(1);
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_language_routes_real_tls_connections() -> anyhow::Result<()> {
    let pki = Pki::new(&["*.port.test", "*.b.test", "other.test"])?;
    let server = pki.server_config()?;
    let a = backend::tls("A", server.clone()).await?;
    let b = backend::tls("B", server.clone()).await?;
    let c = backend::tls("C", server.clone()).await?;
    // The port comes out of the SNI: a real capture decides the upstream.
    let routes = format!(
        r#"default = "{c}"
rules = [
  {{ pattern = '^p(?<port>[0-9]+)\.port\.test$', upstream = "127.0.0.1:{{port}}" }},
  {{ pattern = '^(?<name>[a-z]+)\.b\.test$', upstream = "{b}" }},
]"#
    );
    let client = pki.client_config(&["h2"])?;
    for name in REGEX_SERVICES {
        // No fuel setting: limen's default fits every language.
        let toml = config(&guests::example(name), &routes, "", "");
        let limen = Running::start(&toml).await?;
        for (sni, expected) in [
            (format!("p{}.port.test", a.port()), "A"),
            ("x.b.test".to_owned(), "B"),
            ("other.test".to_owned(), "C"),
            (format!("p{}.port.test", a.port()), "A"),
        ] {
            let body = tls_get(limen.addr, &sni, client.clone()).await?;
            assert!(
                body.starts_with(&format!("backend={expected} sni={sni}")),
                "{name}, {sni}: got `{body}`"
            );
        }
        assert_eq!(
            limen.counter("limen_tls_sni_route_total", &[("result", "regex")]),
            3,
            "{name} reports its rule kind"
        );
        assert_eq!(
            limen.counter("limen_tls_sni_route_total", &[("result", "fallback")]),
            1,
            "{name}"
        );
        limen.stop().await?;
    }
    Ok(())
}

/// `loop.*` spins forever in Python and in JavaScript: stopped by fuel (or,
/// with fuel to spare, by the deadline), the connection gets the fail mode
/// (here: the fallback upstream), and the next connection is routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_loops_are_stopped_and_the_fail_mode_applies() -> anyhow::Result<()> {
    let pki = Pki::new(&["loop.test", "fine.test"])?;
    let server = pki.server_config()?;
    let a = backend::tls("A", server.clone()).await?;
    let fallback = backend::tls("F", server.clone()).await?;
    let client = pki.client_config(&[])?;
    for name in ["misbehave-py", "misbehave-js"] {
        for (limits, kind) in [
            ("fuel = 20_000_000\ntimeout = \"1s\"", "fuel"),
            ("fuel = 1_000_000_000_000\ntimeout = \"200ms\"", "deadline"),
        ] {
            let policy = format!("{limits}\non_error = {{ fallback = \"{fallback}\" }}");
            let toml = config(
                &guests::example(name),
                &format!("upstream = \"{a}\""),
                &policy,
                "",
            );
            let limen = Running::start(&toml).await?;
            let body = tls_get(limen.addr, "loop.test", client.clone()).await?;
            assert!(body.starts_with("backend=F "), "{name} {kind}: `{body}`");
            assert_eq!(
                limen.counter("limen_policy_failures_total", &[("kind", kind)]),
                1,
                "{name}: stopped by {kind}"
            );
            let body = tls_get(limen.addr, "fine.test", client.clone()).await?;
            assert!(body.starts_with("backend=A "), "{name} {kind}: `{body}`");
            limen.stop().await?;
        }
    }
    Ok(())
}

/// An 18 MB Python and a 12 MB JavaScript component are compiled once: a
/// second start (a new engine, as a new process has) loads the compiled code
/// from the cache directory and decides the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_components_are_compiled_once_then_loaded_from_the_cache() -> anyhow::Result<()> {
    use limen::policy::{CompiledFrom, Module, Policy, PolicyEngine};

    for name in ["regex-services-py", "regex-services-js"] {
        let cache = scratch("cache");
        let settings = offline(name, SVC_RULE);
        let module = Module::read(&settings.module).await?;
        let mut sources = Vec::new();
        for _start in 0..2 {
            let engine = PolicyEngine::new()?.with_cache(Some(&cache));
            let (policy, report) = Policy::prepare(&engine, &settings, &module).await?;
            sources.push(report.compiled_from);
            let verdict = policy
                .decide(
                    &limen::policy::Connection {
                        client: ([192, 0, 2, 1], 5000).into(),
                        local: ([192, 0, 2, 2], 443).into(),
                        listener: "public".into(),
                    },
                    Some(&summary("billing.svc.test")?),
                )
                .await?;
            assert_eq!(
                verdict.decision.to_string(),
                "passthrough:billing.internal:443"
            );
        }
        assert_eq!(
            sources,
            [CompiledFrom::Compiled, CompiledFrom::Cache],
            "{name}"
        );
        let entries = std::fs::read_dir(&cache)?.count();
        assert_eq!(entries, 1, "{name}: one compiled component in the cache");
    }
    Ok(())
}

/// What limen's parser makes of a rustls ClientHello for `sni`.
fn summary(sni: &str) -> anyhow::Result<std::sync::Arc<limen::hello::HelloSummary>> {
    use limen::hello::{HelloSummary, Progress, frame, synthesise};
    let bytes = synthesise(Some(sni), &[]).map_err(anyhow::Error::msg)?;
    match frame(&bytes, bytes.len())? {
        Progress::Complete(framed) => Ok(HelloSummary::parse(&framed)?.into()),
        _ => anyhow::bail!("the hello did not frame"),
    }
}

/// componentize-js 0.23's heap keeps memory per call (~2.4 KB with the
/// interface 0.1 record, ~0.5 KB since 0.2 hands it only the SNI: an
/// instance reaches the top eighth of limen's default 16 MiB every ~9,500
/// calls, and without recycling would fail soon after). limen
/// replaces an instance once its memory is within an eighth of the limit, so
/// no call fails; a Rust instance, whose memory stays flat, is never replaced,
/// nor is a Python one that starts near its limit but does not grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_near_its_memory_limit_is_replaced_before_a_call_fails() -> anyhow::Result<()> {
    use limen::policy::{Connection, Policy};

    let hello = summary("billing.svc.test")?;
    let conn = Connection {
        client: ([192, 0, 2, 1], 5000).into(),
        local: ([192, 0, 2, 2], 443).into(),
        listener: "public".into(),
    };
    // A fresh Python instance holds ~12.6 MiB: at 14 MiB it starts inside
    // the top eighth, and must not be replaced after every call for that.
    for (name, memory_mib, calls, min_recycled, max_recycled) in [
        ("regex-services-js", 16, 20_000, 1, 10),
        ("regex-services", 16, 5_000, 0, 0),
        ("regex-services-py", 14, 2_000, 0, 5),
    ] {
        let mut settings = offline(name, SVC_RULE);
        settings.memory = memory_mib << 20;
        let policy = Policy::load_offline(&settings).await?;
        let mut recycled = 0;
        for call in 0..calls {
            let verdict = policy
                .decide(&conn, Some(&hello))
                .await
                .map_err(|e| anyhow::anyhow!("{name}, call {call}: {e}"))?;
            recycled += usize::from(verdict.recycled);
        }
        assert!(
            (min_recycled..=max_recycled).contains(&recycled),
            "{name}: {recycled} instances replaced in {calls} calls"
        );
    }
    Ok(())
}

/// The four implementations refuse the same bad configs at `init`, so a
/// config that loads in one language loads in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_regex_services_refuse_the_same_bad_configs() -> anyhow::Result<()> {
    use limen::policy::{LoadError, Policy};

    let bad = [
        ("an unknown field", r#"{"rules":[],"bogus":1}"#),
        ("no rules", r#"{"default":"127.0.0.1:1"}"#),
        (
            "a default that is not a string",
            r#"{"rules":[],"default":5}"#,
        ),
        ("a rule without upstream", r#"{"rules":[{"pattern":"x"}]}"#),
        (
            "a pattern that is not a string",
            r#"{"rules":[{"pattern":5,"upstream":"a:1"}]}"#,
        ),
        (
            "a pattern that does not compile",
            r#"{"rules":[{"pattern":"^(x$","upstream":"a:1"}]}"#,
        ),
        (
            "a template naming no group",
            r#"{"rules":[{"pattern":"^(?<a>x)$","upstream":"{b}:1"}]}"#,
        ),
        (
            "an unclosed template brace",
            r#"{"rules":[{"pattern":"^(?<a>x)$","upstream":"{a:1"}]}"#,
        ),
        (
            "a group name used twice",
            r#"{"rules":[{"pattern":"^(?<a>x)(?<a>y)$","upstream":"{a}:1"}]}"#,
        ),
    ];
    for name in REGEX_SERVICES {
        for (what, json) in bad {
            match Policy::load_offline(&offline(name, json)).await {
                Err(LoadError::Init(message)) => {
                    assert!(!message.is_empty(), "{name}, {what}: an empty reason")
                }
                Err(other) => panic!("{name}, {what}: refused, but not by init: {other}"),
                Ok(_) => panic!("{name} accepted {what}: {json}"),
            }
        }
        let good = r#"{"rules":[{"pattern":"^(?<a>x)$","upstream":"{a}:1"}],"default":null}"#;
        Policy::load_offline(&offline(name, good))
            .await
            .map_err(|e| anyhow::anyhow!("{name} refused a good config: {e}"))?;
    }
    Ok(())
}
