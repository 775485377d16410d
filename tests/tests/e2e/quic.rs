//! QUIC routed by the SNI of its Initial packets: aioquic HTTP/3 clients
//! through limen to aioquic HTTP/3 upstreams, decided by the same
//! `static-routes` guest and config as TCP, on a port a TCP listener
//! shares. The HTTP/3 body proves the whole path.

use std::time::Duration;

use limen_e2e::harness::{Running, STATUS, quic_config};
use limen_e2e::http;
use limen_e2e::quic::{H3Get, H3Server, h3_get, h3_refused, h3_servers};
use limen_e2e::{free_port, guests};

use crate::common::scratch;

const NAMES: [&str; 3] = ["a.test", "b.test", "c.test"];

/// limen with a TCP and a QUIC listener on one port, routing each name to
/// its server, `blocked.test` rejected; `limits` go in `[limits]`.
async fn limen(servers: &[H3Server], limits: &str) -> anyhow::Result<Running> {
    limen_with(servers, limits, "").await
}

/// [`limen`], with `extra` sections.
async fn limen_with(servers: &[H3Server], limits: &str, extra: &str) -> anyhow::Result<Running> {
    let port = free_port()?;
    let routes: Vec<String> = NAMES
        .iter()
        .zip(servers)
        .map(|(name, server)| format!("{{ match = \"{name}\", upstream = \"{}\" }}", server.addr()))
        .collect();
    let routes = format!(
        "{},\n  {{ match = \"blocked.test\", reject = \"access_denied\" }}",
        routes.join(",\n  ")
    );
    Running::start(&quic_config(port, true, &routes, limits, extra)).await
}

/// Wait (bounded) until the QUIC listener has no flow open.
async fn flows_end(limen: &Running) -> anyhow::Result<()> {
    let active = [("listener", "quic")];
    let within = Duration::from_secs(10);
    limen
        .gauge_reads(within, "limen_quic_flows_active", &active, 0)
        .await
}

fn quic_addr(limen: &Running) -> std::net::SocketAddr {
    limen.addrs[1].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_names_reach_three_http3_upstreams_and_others_are_closed() -> anyhow::Result<()> {
    let (servers, ca) = h3_servers(&scratch("quic"), &NAMES).await?;
    let limen = limen_with(&servers, "", STATUS).await?;
    let addr = quic_addr(&limen);
    assert_eq!(
        addr.port(),
        limen.addr.port(),
        "TCP and QUIC share the port"
    );
    for (name, server) in NAMES.iter().zip(&servers) {
        let body = h3_get(addr, name, &ca, "/through-limen").await?;
        assert_eq!(
            body,
            format!("{name} h3 /through-limen"),
            "{}",
            server.log()
        );
        // The upstream saw the client's own hello: its SNI and h3.
        assert!(
            server
                .log()
                .contains(&format!("handshake sni={name} alpn=h3"))
        );
    }
    // QUIC v2 (RFC 9369) Initials are read as well.
    let body = H3Get::new(addr, "b.test", &ca)
        .path("/v2")
        .quic_v2()
        .body()
        .await?;
    assert_eq!(body, "b.test h3 /v2");
    // A rejected name gets the alert as a CONNECTION_CLOSE at once.
    let refused = h3_refused(addr, "blocked.test", &ca, "/").await?;
    assert!(
        refused.contains("error_code=0x131"),
        "access_denied: {refused}"
    );
    let refused = h3_refused(addr, "nobody.test", &ca, "/").await?;
    assert!(
        refused.contains("error_code=0x170"),
        "unrecognized_name: {refused}"
    );
    let flows = limen.counter("limen_quic_flows_total", &[("listener", "quic")]);
    assert_eq!(flows, 4, "one flow per routed client");
    let up = limen.counter(
        "limen_quic_datagrams_total",
        &[("listener", "quic"), ("direction", "up")],
    );
    let down = limen.counter(
        "limen_quic_datagrams_total",
        &[("listener", "quic"), ("direction", "down")],
    );
    assert!(up >= 8 && down >= 8, "up {up}, down {down}");
    // The status page lists the QUIC listener and its open flows.
    let status = limen.status_addr.expect("[status] is configured");
    let json: serde_json::Value =
        serde_json::from_str(&http::get(status, "/status.json").await?.ok()?)?;
    let quic = &json["listeners"][1];
    assert_eq!(
        (quic["name"].as_str(), quic["transport"].as_str()),
        (Some("quic"), Some("quic"))
    );
    assert_eq!(quic["active"], 4, "{quic}");
    assert_eq!(json["listeners"][0]["transport"], "tcp");
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_flows_expire_and_max_flows_holds() -> anyhow::Result<()> {
    let (servers, ca) = h3_servers(&scratch("quic"), &NAMES).await?;
    let log = scratch("quic-access.log");
    let access = format!("[access_log]\npath = \"{}\"", log.display());
    let limits = "max_flows = 1\nflow_idle_timeout = \"2s\"";
    let limen = limen_with(&servers, limits, &access).await?;
    let addr = quic_addr(&limen);
    assert_eq!(h3_get(addr, "a.test", &ca, "/one").await?, "a.test h3 /one");
    // The first client's flow is open (until idle): a second client is
    // not admitted, and waits in vain.
    let second = H3Get::new(addr, "b.test", &ca)
        .timeout(Duration::from_secs(1))
        .run()
        .await?;
    assert!(!second.success, "{}", second.stderr);
    assert!(
        limen.counter(
            "limen_quic_dropped_total",
            &[("listener", "quic"), ("reason", "max_flows")]
        ) > 0
    );
    // Two idle seconds later the flow is gone and its slot free again.
    flows_end(&limen).await?;
    assert_eq!(h3_get(addr, "b.test", &ca, "/two").await?, "b.test h3 /two");
    limen.stop().await?;
    // One access log line per flow, with its datagrams and how it ended.
    let lines = std::fs::read_to_string(&log)?;
    let first = lines.lines().find(|l| l.contains("sni=a.test"));
    let first = first.unwrap_or_else(|| panic!("no line for a.test:\n{lines}"));
    for part in [
        "listener=quic",
        "alpn=h3",
        "ja4=q13",
        "action=passthrough",
        &format!("upstream={}", servers[0].addr()),
        "end=idle_timeout",
        "transport=quic",
    ] {
        assert!(first.contains(part), "{part} in {first}");
    }
    let datagrams = |key: &str| -> u64 {
        let value = first.split(&format!("{key}=")).nth(1).unwrap_or("0");
        value.split(' ').next().unwrap_or("0").parse().unwrap_or(0)
    };
    assert!(
        datagrams("datagrams_up") >= 3 && datagrams("datagrams_down") >= 3,
        "{first}"
    );
    assert!(datagrams("bytes_up") > 1200, "{first}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_changes_port_keeps_its_upstream() -> anyhow::Result<()> {
    let (servers, ca) = h3_servers(&scratch("quic"), &NAMES).await?;
    let limen = limen(&servers, "").await?;
    let addr = quic_addr(&limen);
    // Each new port is hashed to one of limen's two workers: several moves
    // land on the flow's own worker and on the other one.
    for round in 0..6 {
        let reply = H3Get::new(addr, "c.test", &ca)
            .path(&format!("/moved-{round}"))
            .rebind_after(Duration::from_millis(50))
            .run()
            .await?;
        assert!(reply.success, "round {round}: {}", reply.stderr);
        assert_eq!(reply.body, format!("c.test h3 /moved-{round}"));
        let (old, new) = reply.rebound().expect("the client moved");
        assert_ne!(old, new);
        // The flow is still open at the port its client moved to. Another
        // client takes that port (as a NAT hands a freed port to another
        // device) and asks for another name: it reaches its own upstream,
        // not the old flow's, whichever worker holds that flow.
        let reply = H3Get::new(addr, "a.test", &ca)
            .path(&format!("/reused-{round}"))
            .local_port(new)
            .run()
            .await?;
        assert!(
            reply.success,
            "round {round}, port reused: {}",
            reply.stderr
        );
        assert_eq!(reply.body, format!("a.test h3 /reused-{round}"));
    }
    // Each move reached the upstream as a move of its own (limen gave the
    // flow a new path): the server saw the path change and validated it,
    // so a spoofed move could not aim the flow at a victim.
    let log = servers[2].log();
    assert_eq!(log.matches("path from=").count(), 6, "{log}");
    let unrouted = [("listener", "quic"), ("reason", "unknown_flow")];
    assert_eq!(limen.counter("limen_quic_dropped_total", &unrouted), 0);
    let flows = limen.counter("limen_quic_flows_total", &[("listener", "quic")]);
    assert_eq!(flows, 12, "a moved client is the same flow, not a new one");
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_http3_members_checked_by_version_negotiation() -> anyhow::Result<()> {
    let dir = scratch("quic-pool");
    std::fs::create_dir_all(&dir)?;
    let pki = limen_e2e::pki::Pki::new(&["a.test"])?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem)?;
    let (cert, key) = pki.issue_files(&dir, "a.test", &["a.test"], None)?;
    let one = H3Server::start("one", &cert, &key).await?;
    let mut two = H3Server::start("two", &cert, &key).await?;
    let pool = format!(
        "[upstreams.pools.h3]\nmembers = [\"{}\", \"{}\"]\nbalance = \"round_robin\"\n\
         [upstreams.pools.h3.health]\ncheck = \"quic\"\ninterval = \"200ms\"\n\
         timeout = \"150ms\"\nrise = 1\nfall = 1\n",
        one.addr(),
        two.addr(),
    );
    let routes = r#"{ match = "a.test", pool = "h3" }"#;
    let idle = "flow_idle_timeout = \"2s\"";
    let toml = quic_config(0, false, routes, idle, &pool);
    let limen = Running::start(&toml).await?;
    let addr = limen.addr;
    // Both members pass the check and share the flows.
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..4 {
        let body = h3_get(addr, "a.test", &ca, &format!("/{round}")).await?;
        seen.insert(body.split(' ').next().unwrap_or_default().to_owned());
    }
    assert_eq!(seen.len(), 2, "round robin over both members: {seen:?}");
    // One member dies: its check fails, and every new flow goes to the other.
    let healthy = |member: String| [("pool", "h3".to_owned()), ("member", member)];
    two.kill();
    let labels = healthy(two.addr().to_string());
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    limen
        .gauge_reads(
            Duration::from_secs(10),
            "limen_upstream_member_healthy",
            &labels,
            0,
        )
        .await?;
    for round in 0..4 {
        let body = h3_get(addr, "a.test", &ca, &format!("/after-{round}")).await?;
        assert_eq!(body, format!("one h3 /after-{round}"));
    }
    // Each flow held its member while it lasted; idle, they give it back.
    let member = one.addr().to_string();
    let held = [("pool", "h3"), ("member", member.as_str())];
    assert!(limen.counter("limen_upstream_member_connections", &held) > 0);
    let idle = Duration::from_secs(10);
    limen
        .gauge_reads(idle, "limen_upstream_member_connections", &held, 0)
        .await?;
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_a_quic_listener_frees_its_port_within_the_grace()
-> anyhow::Result<()> {
    use limen::control::admin::protocol::Answer;
    let (servers, ca) = h3_servers(&scratch("quic"), &NAMES).await?;
    let limen = limen(&servers, "").await?;
    let addr = quic_addr(&limen);
    // An open flow (idle for 60 s unless the listener goes).
    assert_eq!(
        h3_get(addr, "a.test", &ca, "/open").await?,
        "a.test h3 /open"
    );
    let config = |quic: bool| -> anyhow::Result<limen::Config> {
        let listener =
            format!("[[listeners]]\nname = \"quic\"\nbind = \"{addr}\"\nprotocol = \"quic\"\n");
        let toml = format!(
            "[[listeners]]\nname = \"tcp\"\nbind = \"{}\"\n{}\n[policy]\nmodule = \"{}\"\n\
             [policy.config]\nroutes = [{{ match = \"a.test\", upstream = \"{}\" }}]\n\
             [upstreams]\nallow = [\"127.0.0.1/32\"]\n[limits]\nshutdown_grace = \"1s\"\n",
            limen.addr,
            if quic { listener.as_str() } else { "" },
            guests::example("static-routes").display(),
            servers[0].addr(),
        );
        Ok(limen::Config::from_toml(&toml)?)
    };
    let removed = limen.control.reload(config(false)?).await;
    assert!(matches!(removed, Answer::Reloaded(_)), "{removed:?}");
    // The flow is cut after the grace; the port is limen's to bind again.
    flows_end(&limen).await?;
    let added = limen.control.reload(config(true)?).await;
    assert!(matches!(added, Answer::Reloaded(_)), "{added:?}");
    assert_eq!(
        h3_get(addr, "a.test", &ca, "/again").await?,
        "a.test h3 /again"
    );
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_holds_its_policy_limit_slot_until_it_ends() -> anyhow::Result<()> {
    let (servers, ca) = h3_servers(&scratch("quic"), &NAMES[..1]).await?;
    let routes = format!(
        "{{ match = \"a.test\", upstream = \"{}\", max_connections = 1 }}",
        servers[0].addr()
    );
    let toml = quic_config(0, false, &routes, "flow_idle_timeout = \"2s\"", "");
    let limen = Running::start(&toml).await?;
    assert_eq!(
        h3_get(limen.addr, "a.test", &ca, "/1").await?,
        "a.test h3 /1"
    );
    // The first flow is open (idle for 2 s): the route's one slot is taken.
    let refused = h3_refused(limen.addr, "a.test", &ca, "/2").await?;
    assert!(
        refused.contains("error_code=0x131"),
        "over_limit: {refused}"
    );
    // Idle, the flow ends and gives its slot back.
    flows_end(&limen).await?;
    assert_eq!(
        h3_get(limen.addr, "a.test", &ca, "/3").await?,
        "a.test h3 /3"
    );
    limen.stop().await
}
