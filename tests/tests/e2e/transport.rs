//! The hello's transport (`client-hello.transport`, interface 0.2.1): a
//! policy routes a QUIC and a TCP hello for one name differently, and
//! guests built for 0.2.0 (before the getter existed) and 0.2.1 (before
//! `report-routes`) load and route unchanged (wasmtime links 0.2.x imports semver-wise, and the host's
//! extra method is a superset of what the guest imports). A guest built for
//! a newer 0.2.x that needs a function this limen lacks is refused with
//! `P006` naming that version.

use std::sync::Arc;

use limen::hello::{HelloSummary, InitialReader, Progress, QuicProgress, frame, synthesise};
use limen::policy::{Connection, INTERFACE_VERSION, LoadError, Module, Policy, PolicyEngine};
use limen::state::config::PolicyConfig;
use limen_e2e::{guests, shared_dir};

fn conn() -> Connection {
    Connection {
        client: ([192, 0, 2, 1], 5000).into(),
        local: ([192, 0, 2, 2], 443).into(),
        listener: "public".into(),
    }
}

/// A rustls ClientHello for `sni`, over TCP.
fn tcp_hello(sni: &str) -> anyhow::Result<Arc<HelloSummary>> {
    let bytes = synthesise(Some(sni), &[]).map_err(anyhow::Error::msg)?;
    match frame(&bytes, bytes.len())? {
        Progress::Complete(framed) => Ok(HelloSummary::parse(&framed)?.into()),
        _ => anyhow::bail!("the hello did not frame"),
    }
}

/// aioquic's first flight for `b.test` (shared/testdata/quic/README.md), read
/// from its Initial packet as limen's QUIC path reads it.
fn quic_hello() -> anyhow::Result<Arc<HelloSummary>> {
    let datagram = std::fs::read(shared_dir().join("testdata/quic/aioquic172-small.bin"))?;
    let mut reader = InitialReader::new(16 * 1024);
    match reader.feed(&datagram)? {
        QuicProgress::Complete(framed) => Ok(HelloSummary::parse(&framed)?.into()),
        QuicProgress::NeedMore => anyhow::bail!("one datagram should hold the hello"),
    }
}

/// What `policy` decides for `hello`, as limen prints decisions.
async fn decide(policy: &Policy, hello: &Arc<HelloSummary>) -> anyhow::Result<String> {
    Ok(policy
        .decide(&conn(), Some(hello))
        .await?
        .decision
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_and_a_tcp_hello_for_one_name_route_differently() -> anyhow::Result<()> {
    let (tcp, quic) = (tcp_hello("b.test")?, quic_hello()?);
    assert_eq!(quic.sni().map(AsRef::as_ref), Some("b.test"));
    assert_eq!(quic.transport(), limen::hello::Transport::Quic);
    let table = |routes: &str| {
        PolicyConfig::offline(
            guests::example("static-routes"),
            format!(r#"{{"default":"127.0.0.1:9","routes":[{routes}]}}"#),
        )
    };
    // A QUIC-only exact route, then one for both; and a wildcard likewise,
    // so both of static-routes' lookups (hash and pattern) are exercised.
    for routes in [
        r#"{"match":"b.test","transport":"quic","upstream":"127.0.0.1:9443"},
           {"match":"b.test","upstream":"127.0.0.1:8443"}"#,
        r#"{"match":"*.test","transport":"quic","upstream":"127.0.0.1:9443"},
           {"match":"b.test","transport":"tcp","upstream":"127.0.0.1:8443"}"#,
    ] {
        let policy = Policy::load_offline(&table(routes)).await?;
        assert_eq!(
            decide(&policy, &quic).await?,
            "passthrough:127.0.0.1:9443",
            "{routes}"
        );
        assert_eq!(
            decide(&policy, &tcp).await?,
            "passthrough:127.0.0.1:8443",
            "{routes}"
        );
    }
    // No route names a transport: both go the same way, as before 0.2.1.
    let same = r#"{"match":"b.test","upstream":"127.0.0.1:8443"}"#;
    let policy = Policy::load_offline(&table(same)).await?;
    for hello in [&quic, &tcp] {
        assert_eq!(decide(&policy, hello).await?, "passthrough:127.0.0.1:8443");
    }
    // An unknown transport name refuses the config at init.
    let bad = r#"{"match":"b.test","transport":"udp","upstream":"127.0.0.1:8443"}"#;
    match Policy::load_offline(&table(bad)).await {
        Err(LoadError::Init(why)) => assert!(why.contains("transport `udp`"), "{why}"),
        other => panic!("expected an init error, got {:?}", other.err()),
    }
    Ok(())
}

/// `wit/router.wit` as it would read at `version`: before 0.2.2 without
/// `report-routes`; with `0.2.0` also without `transport` (the enum and the
/// getter taken out again).
fn wit_at(version: &str) -> String {
    let wit = std::fs::read_to_string(limen_e2e::workspace_root().join("wit/router.wit"))
        .expect("wit/router.wit");
    let current = format!("package limen:router@{INTERFACE_VERSION};");
    assert!(wit.contains(&current), "wit/ names {INTERFACE_VERSION}");
    let wit = wit.replace(&current, &format!("package limen:router@{version};"));
    let (before_0_2_1, before_0_2_2) = (version == "0.2.0", ["0.2.0", "0.2.1"].contains(&version));
    let mut old = String::new();
    let mut in_enum = false;
    for line in wit.lines() {
        in_enum |= before_0_2_1 && line.trim() == "enum transport {";
        let added = (before_0_2_1 && line.trim() == "transport: func() -> transport;")
            || (before_0_2_2 && line.trim() == "report-routes: func(count: u32);");
        if !in_enum && !added {
            old.push_str(line);
            old.push('\n');
        }
        in_enum &= line.trim() != "}";
    }
    // Doc comments may mention them; no declaration may.
    let code: Vec<&str> = old
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect();
    assert!(
        !before_0_2_1 || !code.iter().any(|l| l.contains("transport")),
        "the 0.2.0 text names no transport"
    );
    assert!(
        !before_0_2_2 || !code.iter().any(|l| l.contains("report-routes")),
        "the {version} text names no report-routes"
    );
    old
}

/// Load a component of `wit`'s policy world whose `route` passes everything
/// to 10.255.0.1:443, and whose core module imports `imports` besides.
async fn load_wat(wit: &str, imports: &str) -> Result<Policy, LoadError> {
    let wat = guests::route_module(
        imports,
        1,
        "(i32.const 512)",
        guests::PASSTHROUGH_10_255_0_1,
    );
    let bytes = guests::component_of_world(wit, "policy", &wat).expect("encodes");
    let settings = PolicyConfig::offline("unused.wasm".into(), "{}".into());
    let module = Module::from_bytes(bytes.into()).await?;
    let engine = PolicyEngine::new()?;
    Ok(Policy::prepare(&engine, &settings, &module).await?.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_built_for_0_2_0_and_0_2_1_load_and_route() -> anyhow::Result<()> {
    for version in ["0.2.0", "0.2.1"] {
        let policy = load_wat(&wit_at(version), "").await?;
        for hello in [tcp_hello("b.test")?, quic_hello()?] {
            assert_eq!(decide(&policy, &hello).await?, "passthrough:10.255.0.1:443");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_guest_loads_unless_it_needs_what_this_limen_lacks() -> anyhow::Result<()> {
    // 0.2.9 adds a getter; a guest that does not call it links.
    let wit = wit_at("0.2.9").replace(
        "transport: func() -> transport;",
        "transport: func() -> transport;\n        future-field: func() -> u32;",
    );
    load_wat(&wit, "").await?;
    let calls = r#"(import "limen:router/types@0.2.9" "[method]client-hello.future-field"
    (func (param i32) (result i32)))"#;
    match load_wat(&wit, calls).await {
        Err(e @ LoadError::WrongVersion { .. }) => {
            let text = e.to_string();
            assert!(text.starts_with("P006 "), "{text}");
            assert!(text.contains("limen:router@0.2.9"), "{text}");
        }
        other => panic!("expected P006, got {:?}", other.err()),
    }
    Ok(())
}
