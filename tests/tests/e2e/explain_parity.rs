//! `limen explain` refuses exactly what a live limen refuses: both run the
//! same `plan` on the same configuration, so a decision explain promises is
//! one production carries out, and a refused one gets the fail mode in both.

use std::net::SocketAddr;

use limen::observe::metrics::names;
use limen::offline::explain::{HelloSource, explain};
use limen::{Config, policy::Policy};
use limen_e2e::backend;
use limen_e2e::free_port;
use limen_e2e::guests::{self, terminate_to};
use limen_e2e::harness::{Running, config};
use serde_json::Value;

use crate::common::{ask, scratch};

const CLIENT: &str = "127.0.0.1:40000";

/// What explain says limen does: the fail mode's `on_error` (refused), or none.
async fn explained(config: &Config, source: HelloSource) -> anyhow::Result<Value> {
    Ok(explain(config, source, CLIENT.parse()?).await?["outcome"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_refuses_exactly_what_production_refuses() -> anyhow::Result<()> {
    let (fallback, _) = backend::raw(b"F").await?;
    let (good, _) = backend::raw(b"U").await?;
    // limen listens on a port explain (which binds nothing) must know to
    // refuse it as an upstream.
    let port = free_port()?;
    let own = format!("127.0.0.1:{port}");
    let routes = format!(
        r#"routes = [
  {{ match = "a.test", upstream = "{good}" }},
  {{ match = "own.test", upstream = "{own}" }},
  {{ match = "outside.test", upstream = "10.255.0.1:443" }},
  {{ match = "cert.test", terminate = {{ certificate = "nope", upstream = "{good}" }} }},
]"#
    );
    let toml = config(
        &guests::example("static-routes"),
        &routes,
        &format!("on_error = {{ fallback = \"{fallback}\" }}"),
        "",
    )
    .replace("127.0.0.1:0", &own);
    let limen = Running::start(&toml).await?;
    let parsed = Config::from_toml(&toml)?;
    let cases = [
        ("a.test", None),
        ("own.test", Some("one of limen's own listeners")),
        ("outside.test", Some("is not in the allow-list")),
        ("cert.test", Some("no certificate named `nope`")),
    ];
    for (sni, refusal) in cases {
        let hello = limen::offline::explain::synthesise(sni, &[])?;
        let live = ask(limen.addr, &hello).await?;
        let outcome = explained(&parsed, HelloSource::Bytes(hello)).await?;
        let address = &outcome["upstream"]["address"];
        match refusal {
            None => {
                assert_eq!(live, b"U", "{sni}: production routes it");
                assert_eq!(address, &good.to_string(), "{sni}: {outcome}");
                assert!(outcome["on_error"].is_null(), "{sni}: {outcome}");
            }
            Some(why) => {
                assert_eq!(live, b"F", "{sni}: production refuses it");
                assert_eq!(address, &fallback.to_string(), "{sni}: {outcome}");
                let said = outcome["on_error"].as_str().unwrap_or_default();
                assert!(
                    said.starts_with("P014") && said.contains(why),
                    "{sni}: {said}"
                );
                assert_eq!(outcome["kind"], "invalid_decision", "{sni}");
            }
        }
    }
    let refused = limen
        .counter_reaches(names::POLICY_FAILURES, &[("kind", "invalid_decision")], 3)
        .await;
    assert_eq!(refused, 3);
    limen.stop().await
}

/// A policy that terminates everything: a connection that is not TLS has no
/// hello to answer (refused), a TLS one names a certificate limen lacks
/// (refused); explain says the same of the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_without_a_hello_is_refused_live_and_offline() -> anyhow::Result<()> {
    let (fallback, _) = backend::raw(b"F").await?;
    let (good, _) = backend::raw(b"U").await?;
    let module = scratch("terminate-all.wasm");
    std::fs::write(&module, terminate_to("secure", &good.to_string())?)?;
    let toml = config(
        &module,
        "",
        &format!("on_error = {{ fallback = \"{fallback}\" }}"),
        "",
    );
    let limen = Running::start(&toml).await?;
    let parsed = Config::from_toml(&toml)?;
    let plain = b"GET / HTTP/1.0\r\n\r\n".to_vec();
    let tls = limen::offline::explain::synthesise("a.test", &[])?;
    for (bytes, why) in [
        (plain, "terminate needs a TLS ClientHello"),
        (tls, "no certificate named `secure`"),
    ] {
        assert_eq!(ask(limen.addr, &bytes).await?, b"F", "{why}: live");
        let outcome = explained(&parsed, HelloSource::Bytes(bytes)).await?;
        let said = outcome["on_error"].as_str().unwrap_or_default();
        assert!(said.contains(why), "{why}: {outcome}");
        assert_eq!(outcome["upstream"]["address"], fallback.to_string());
    }
    limen.stop().await?;
    // The guest itself decided what it was asked: nothing failed in it.
    let policy = Policy::load_offline(&parsed.policy).await?;
    let conn = limen::policy::Connection {
        client: CLIENT.parse::<SocketAddr>()?,
        local: CLIENT.parse()?,
        listener: "public".into(),
    };
    let verdict = policy.decide(&conn, None).await?;
    assert_eq!(
        verdict.decision.to_string(),
        format!("terminate:secure:{good}")
    );
    Ok(())
}

/// `[[policy.expect]]` plans its samples too: a sample the policy decides as
/// written, but that limen would refuse (here: outside the allow-list),
/// refuses the policy at start with `P005` and the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_test_sample_limen_would_refuse_refuses_the_policy() -> anyhow::Result<()> {
    let routes = r#"routes = [{ match = "out.test", upstream = "10.255.0.1:443" }]"#;
    let expect = "[[policy.expect]]\nsni = \"out.test\"\ndecision = \"passthrough:10.255.0.1:443\"";
    let toml = config(&guests::example("static-routes"), routes, "", expect);
    let error = Running::start(&toml).await.err().expect("refused at start");
    let text = format!("{error:#}");
    assert!(
        text.contains("P005") && text.contains("not in the allow-list"),
        "{text}"
    );
    // Inside the allow-list, the same sample passes.
    let allowed = toml.replace("10.255.0.1:443", "127.0.0.1:9");
    Running::start(&allowed).await?.stop().await
}
