//! How many rules a policy holds (`host.report-routes`, interface 0.2.2):
//! every routing example reports it from `init`, in each language it exists
//! in; limen exports it as `limen_tls_sni_routes_active` for the live policy
//! and a candidate apart, and shows it in `limen status` and on the status
//! page. A policy that does not say has no series (not a zero).

use std::sync::Arc;

use limen::control::admin::{client, protocol};
use limen::observe::metrics::names;
use limen::policy::Policy;
use limen_e2e::harness::{METRICS_AND_STATUS, Running, config};
use limen_e2e::{backend, guests, http};

use crate::common::{ask, scratch};
use crate::languages::{REGEX_SERVICES, offline};

/// Three regex rules (a default is not a rule).
const THREE_REGEX_RULES: &str = r#"{"default":"127.0.0.1:9","rules":[
    {"pattern":"^a\\.test$","upstream":"127.0.0.1:1"},
    {"pattern":"^(?<s>[a-z]+)\\.svc\\.test$","upstream":"{s}.internal:443"},
    {"pattern":"^c\\.test$","upstream":"127.0.0.1:3"}]}"#;

/// Four exact and wildcard routes.
const FOUR_STATIC_ROUTES: &str = r#"{"default":"127.0.0.1:9","routes":[
    {"match":"a.test","upstream":"127.0.0.1:1"},{"match":"*.b.test","upstream":"127.0.0.1:2"},
    {"match":"c.test","upstream":"127.0.0.1:3"},{"match":"d.test","reject":"access_denied"}]}"#;

/// Two tenants on the shared pool's domain.
const TWO_TENANTS: &str = r#"{"domain":"saas.test","pool":"shared",
    "limits":{"per_second":5,"burst":10,"max_connections":20},
    "tenants":{"acme":{"pool":"acme"},"free":{"per_second":1,"burst":2}}}"#;

async fn rules(name: &str, config_json: &str) -> anyhow::Result<Option<u32>> {
    let policy = Policy::load_offline(&offline(name, config_json))
        .await
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok(policy.routes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routing_example_reports_its_rules_in_each_language() -> anyhow::Result<()> {
    let mut examples = vec![("static-routes", FOUR_STATIC_ROUTES, 4)];
    examples.extend(REGEX_SERVICES.map(|name| (name, THREE_REGEX_RULES, 3)));
    examples.extend([("tenants", TWO_TENANTS, 2), ("tenants-py", TWO_TENANTS, 2)]);
    for (name, config_json, want) in examples {
        assert_eq!(rules(name, config_json).await?, Some(want), "{name}");
    }
    // Two routes and one deny prefix.
    let gate = r#"{"deny":["t10"],"routes":[{"match":"a.test","upstream":"127.0.0.1:1"},
        {"match":"*.b.test","upstream":"127.0.0.1:2"}]}"#;
    assert_eq!(rules("ja4-gate", gate).await?, Some(3), "ja4-gate");
    // A policy that does not call it has no count, not a zero.
    let misbehave = r#"{"upstream":"127.0.0.1:1"}"#;
    assert_eq!(
        rules("misbehave", misbehave).await?,
        None,
        "misbehave says nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_and_candidate_counts_are_exported_apart_and_follow_a_promote()
-> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let admin = scratch("admin.sock");
    let extra = format!(
        "{METRICS_AND_STATUS}\n[admin]\nsocket = \"{}\"",
        admin.display()
    );
    let routes = format!(
        "default = \"{a}\"\nroutes = [ {{ match = \"a.test\", upstream = \"{a}\" }}, \
         {{ match = \"b.test\", upstream = \"{a}\" }} ]"
    );
    let toml = config(&guests::example("static-routes"), &routes, "", &extra);
    let limen = Running::start(&toml).await?;
    let live = [("policy", "live")];
    assert_eq!(limen.counter(names::ROUTES_ACTIVE, &live), 2);
    let candidate_series = format!("{}{{policy=\"candidate\"}}", names::ROUTES_ACTIVE);
    assert!(!limen.metrics.render().contains(&candidate_series));

    // A Python candidate with three rules, shadowed: counted apart.
    let module: Arc<[u8]> = std::fs::read(guests::example("regex-services-py"))?.into();
    let candidate = THREE_REGEX_RULES.replace("127.0.0.1:1", &a.to_string());
    let answer = limen.control.shadow(module, Some(candidate)).await;
    anyhow::ensure!(
        matches!(answer, protocol::Answer::Shadowing(_)),
        "{answer:?}"
    );
    assert_eq!(
        limen.counter(names::ROUTES_ACTIVE, &[("policy", "candidate")]),
        3
    );
    assert_eq!(limen.counter(names::ROUTES_ACTIVE, &live), 2);
    let hello = limen::offline::explain::synthesise("a.test", &[])?;
    assert_eq!(ask(limen.addr, &hello).await?, b"A");

    // `limen status`, `/status.json` and `/status` say the same.
    let admin = admin.to_str().expect("utf-8 path");
    let protocol::Answer::Status(status) =
        client::call(admin, None, protocol::Request::Status, &[]).await?
    else {
        anyhow::bail!("no status");
    };
    let candidate_rules = status.candidate.as_ref().and_then(|c| c.rules);
    assert_eq!((status.rules, candidate_rules), (Some(2), Some(3)));
    let page = limen.status_addr.expect("[status] is configured");
    let json: serde_json::Value =
        serde_json::from_str(&http::get(page, "/status.json").await?.ok()?)?;
    assert_eq!(
        (&json["policy"]["rules"], &json["candidate"]["rules"]),
        (&2.into(), &3.into())
    );
    let html = http::get(page, "/status").await?.ok()?;
    assert!(html.contains(", 2 rules, configuration") && html.contains("shadow, 3 rules)"));

    // Promoted: the live count is the candidate's, and no candidate is left.
    let answer = limen.control.promote().await;
    anyhow::ensure!(matches!(answer, protocol::Answer::Swapped(_)), "{answer:?}");
    assert_eq!(limen.counter(names::ROUTES_ACTIVE, &live), 3);
    assert!(!limen.metrics.render().contains(&candidate_series));
    // A live policy that does not say leaves no stale count behind.
    let silent: Arc<[u8]> = std::fs::read(guests::example("misbehave"))?.into();
    let upstream = format!(r#"{{"upstream":"{a}"}}"#);
    let answer = limen.control.swap(silent, Some(upstream)).await;
    anyhow::ensure!(matches!(answer, protocol::Answer::Swapped(_)), "{answer:?}");
    assert!(!limen.metrics.render().contains(names::ROUTES_ACTIVE));
    // A reload that changes the policy (SIGHUP's path): its count is live.
    let c_route = format!(", {{ match = \"c.test\", upstream = \"{a}\" }} ]");
    let three = config(
        &guests::example("static-routes"),
        &routes.replace(" ]", &c_route),
        "",
        &extra,
    );
    let answer = limen
        .control
        .reload(limen::Config::from_toml(&three)?)
        .await;
    assert!(answer.is_success(), "{answer:?}");
    assert_eq!(limen.counter(names::ROUTES_ACTIVE, &live), 3);
    limen.stop().await
}
