//! Watching limen from outside: `/metrics` scraped over HTTP, with exact
//! deltas for every kind of outcome, and the access log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use limen::control::admin::protocol::Answer;
use limen_e2e::harness::{Running, config};
use limen_e2e::scrape::Scrape;
use limen_e2e::wait::{eventually, last_seen};
use limen_e2e::{backend, guests, http};

use crate::common::{WAIT, ask, hello, raw_exchange};
use crate::faults::INIT_FAILS;

/// The value of the sample line `name{labels}` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_over_http() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let (limen, metrics) =
        with_metrics("static-routes", &format!(r#"default = "{a}""#), "", "").await?;
    let hello = limen::offline::explain::synthesise("t.test", &[])?;
    for _ in 0..3 {
        assert_eq!(ask(limen.addr, &hello).await?, b"A");
    }
    let http::Response { status, body, .. } = http::get(metrics, "/metrics").await?;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        sample(&body, "limen_connections_total{listener=\"public\"}"),
        Some(3.0),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("limen_policy_info{version=\"") && l.ends_with("\"} 1")),
        "{body}"
    );
    let status = http::get(metrics, "/").await?.status;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    limen.stop().await
}

/// limen running guest `guest` with `/metrics` served; the endpoint's address.
async fn with_metrics(
    guest: &str,
    policy_config: &str,
    extra_policy: &str,
    extra: &str,
) -> anyhow::Result<(Running, SocketAddr)> {
    let toml = config(
        &guests::example(guest),
        policy_config,
        extra_policy,
        &format!("[metrics]\nbind = \"127.0.0.1:0\"\n{extra}"),
    );
    let limen = Running::start(&toml).await?;
    let metrics = limen.metrics_addr.expect("metrics endpoint");
    Ok((limen, metrics))
}

const PUBLIC: &str = r#"listener="public""#;

/// `name{listener="public",key="value"}`.
fn series(name: &str, key: &str, value: &str) -> String {
    format!(r#"{name}{{{PUBLIC},{key}="{value}"}}"#)
}

/// Scrape until `series` has grown by `want` since `before` (counts land as
/// each connection finishes, which its client may see first), at most 10 s;
/// the last scrape if it never did, for the caller's exact assertions.
async fn settled(
    addr: SocketAddr,
    before: &Scrape,
    series: &str,
    want: f64,
) -> anyhow::Result<Scrape> {
    let what = format!("{series} to grow by {want}");
    eventually(
        WAIT,
        &what,
        async || Scrape::get(addr).await,
        |now| now.delta(before, series) >= want,
    )
    .await
    .or_else(last_seen)
}

/// Every route result a policy can produce, the miss, and what routing
/// costs, each asserted as an exact delta between two scrapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_result_and_the_miss_move_their_own_series() -> anyhow::Result<()> {
    let (up, _) = backend::raw(b"U").await?;
    let policy = format!(
        r#"default = "{up}"
routes = [
  {{ match = "a.test", upstream = "{up}" }},
  {{ match = "*.wild.test", upstream = "{up}" }},
  {{ match = '~^node[0-9]+\.rx\.test$', upstream = "{up}" }},
  {{ match = "blocked.test", reject = "access_denied" }},
]"#
    );
    let (limen, metrics) = with_metrics("static-routes", &policy, "", "").await?;
    let before = Scrape::get(metrics).await?;
    let sni = |name: &str| limen::offline::explain::synthesise(name, &[]).expect("hello");
    let sends: [(Vec<u8>, &[u8]); 9] = [
        (sni("a.test"), b"U"),
        (sni("a.test"), b"U"),
        (sni("a.test"), b"U"),
        (sni("x.wild.test"), b"U"),
        (sni("y.wild.test"), b"U"),
        (sni("node7.rx.test"), b"U"),
        (sni("unknown.test"), b"U"),
        (limen::hello::synthesise(None, &[]).expect("hello"), b"U"),
        (sni("blocked.test"), b"\x15\x03\x01\x00\x02\x02\x31"),
    ];
    for (hello, reply) in &sends {
        assert_eq!(ask(limen.addr, hello).await?, *reply);
    }
    // Not TLS, and the table has no `plain` route: a miss, closed.
    let reply = raw_exchange(limen.addr, &[b"GET / HTTP/1.0\r\n\r\n"], Duration::ZERO).await?;
    assert!(reply.is_empty());

    let routes = "limen_tls_sni_route_total";
    settled(metrics, &before, &series(routes, "result", "reject"), 2.0).await?;
    // A passthrough's bytes are counted when it ends, after the client has
    // its reply: wait for the last one, not only for the decisions.
    let replayed: usize = sends.iter().take(8).map(|(h, _)| h.len()).sum();
    let bytes_up = r#"limen_bytes_total{direction="up"}"#;
    let after = settled(metrics, &before, bytes_up, replayed as f64).await?;
    let delta = |series: &str| after.delta(&before, series);
    for (result, want) in [
        ("exact", 3.0),
        ("wildcard", 2.0),
        ("regex", 1.0),
        ("fallback", 2.0),
        ("reject", 2.0),
        ("unreported", 0.0),
        ("policy_error", 0.0),
    ] {
        assert_eq!(
            delta(&series(routes, "result", result)),
            want,
            "{result}\n{}",
            after.text
        );
    }
    let miss = format!("limen_tls_sni_listener_miss_total{{{PUBLIC}}}");
    assert_eq!(
        delta(&miss),
        1.0,
        "only the plain-text connection is a miss"
    );
    let failures = "limen_tls_sni_listener_parse_failures_total";
    assert_eq!(delta(&series(failures, "reason", "not_tls")), 1.0);
    assert_eq!(delta(&format!("limen_connections_total{{{PUBLIC}}}")), 10.0);
    assert_eq!(
        delta(&format!("limen_upstream_routed_total{{upstream=\"{up}\"}}")),
        8.0
    );
    assert_eq!(delta("limen_upstream_connect_duration_seconds_count"), 8.0);
    assert_eq!(delta("limen_policy_call_duration_seconds_count"), 10.0);
    assert_eq!(delta("limen_policy_fuel_used_count"), 10.0);
    assert!(delta("limen_policy_fuel_used_sum") > 0.0);
    let peeks = format!("limen_tls_client_hello_peek_duration_seconds_count{{{PUBLIC}}}");
    assert_eq!(delta(&peeks), 10.0);
    // Each routed connection replays its hello upstream and reads "U" back.
    assert_eq!(delta(bytes_up), replayed as f64);
    assert_eq!(delta(r#"limen_bytes_total{direction="down"}"#), 8.0);
    let active = "limen_connections_active";
    for action in ["pending", "passthrough", "reject"] {
        assert_eq!(
            after.value(&series(active, "action", action)),
            0.0,
            "{action}"
        );
    }
    limen.stop().await
}

/// Each way a policy fails is its own `kind`, and each such connection a
/// `policy_error` result; a candidate whose `init` fails counts as `init`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_policy_failure_kind_is_counted() -> anyhow::Result<()> {
    let (fallback, _) = backend::raw(b"F").await?;
    let (upstream, _) = backend::raw(b"U").await?;
    let (limen, metrics) = with_metrics(
        "misbehave",
        &format!("upstream = \"{upstream}\""),
        // `loop.test` must meet its fuel before its 20 ms deadline.
        &format!(
            "fuel = 1_000_000\ntimeout = \"20ms\"\non_error = {{ fallback = \"{fallback}\" }}"
        ),
        "",
    )
    .await?;
    let kinds = "limen_policy_failures_total";
    for (sni, kind) in [
        ("panic.test", "trap"),
        ("loop.test", "fuel"),
        ("sleep.test", "deadline"),
        ("alloc.test", "memory"),
        ("open.test", "invalid_decision"),
    ] {
        let before = Scrape::get(metrics).await?;
        let hello = limen::offline::explain::synthesise(sni, &[])?;
        assert_eq!(ask(limen.addr, &hello).await?, b"F", "{sni}");
        let kind_series = format!("{kinds}{{kind=\"{kind}\"}}");
        let after = settled(metrics, &before, &kind_series, 1.0).await?;
        assert_eq!(
            after.delta(&before, &kind_series),
            1.0,
            "{sni}\n{}",
            after.text
        );
        let total: f64 = limen::outcome::PolicyFailure::ALL
            .iter()
            .map(|k| after.delta(&before, &format!("{kinds}{{kind=\"{k}\"}}")))
            .sum();
        assert_eq!(total, 1.0, "{sni}: one failure, one kind");
        let routes = "limen_tls_sni_route_total";
        assert_eq!(
            after.delta(&before, &series(routes, "result", "policy_error")),
            1.0
        );
    }

    let before = Scrape::get(metrics).await?;
    let wat = guests::route_body("unreachable", "").replace(
        "(func (export \"init\") (param i32 i32) (result i32) (i32.const 256))",
        INIT_FAILS,
    );
    let module: Arc<[u8]> = guests::policy_component(&wat)?.into();
    let answer = limen.control.swap(module, None).await;
    assert!(
        matches!(&answer, Answer::Refused { code, .. } if code == "P004"),
        "{answer:?}"
    );
    let after = Scrape::get(metrics).await?;
    assert_eq!(
        after.delta(&before, &format!("{kinds}{{kind=\"init\"}}")),
        1.0
    );
    limen.stop().await
}

/// A client that sends its hello in four pieces 100 ms apart spends about
/// 300 ms peeking (counted from accept, which comes just after the first
/// piece was sent): the sample lands above the 0.25 s bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_split_hello_moves_the_peek_histogram() -> anyhow::Result<()> {
    let (up, _) = backend::raw(b"U").await?;
    let (limen, metrics) =
        with_metrics("static-routes", &format!(r#"default = "{up}""#), "", "").await?;
    let before = Scrape::get(metrics).await?;
    let hello = hello("large-a.test.bin");
    let quarter = hello.len() / 4;
    let parts: Vec<&[u8]> = hello.chunks(quarter + 1).collect();
    assert_eq!(parts.len(), 4);
    let reply = raw_exchange(limen.addr, &parts, Duration::from_millis(100)).await?;
    assert_eq!(reply, b"U");
    let histogram = "limen_tls_client_hello_peek_duration_seconds";
    let count = format!("{histogram}_count{{{PUBLIC}}}");
    let after = settled(metrics, &before, &count, 1.0).await?;
    let bucket = |le: &str| {
        after.delta(
            &before,
            &format!(r#"{histogram}_bucket{{{PUBLIC},le="{le}"}}"#),
        )
    };
    assert_eq!(after.delta(&before, &count), 1.0);
    assert_eq!(bucket("0.25"), 0.0, "{}", after.text);
    assert_eq!(bucket("3"), 1.0, "{}", after.text);
    assert_eq!(bucket("+Inf"), 1.0);
    let sum = after.delta(&before, &format!("{histogram}_sum{{{PUBLIC}}}"));
    assert!(sum > 0.25, "peek took {sum} s: {}", after.text);
    limen.stop().await
}

/// Each reason a ClientHello is not gathered has its series; none of them
/// reaches the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_parse_failure_reason_is_counted() -> anyhow::Result<()> {
    let (up, _) = backend::raw(b"U").await?;
    let limits = "[limits]\nhello_max_bytes = \"1KiB\"\nhello_timeout = \"300ms\"";
    let policy = format!(r#"default = "{up}""#);
    let (limen, metrics) = with_metrics("static-routes", &policy, "", limits).await?;
    let before = Scrape::get(metrics).await?;
    let small = hello("small-a.test.bin");
    let cases: [&[&[u8]]; 3] = [
        &[&hello("large-a.test.bin")],   // too_large: over the 1 KiB cap
        &[b"\x16\x09\x09\x00\x05hello"], // malformed: a record header, then garbage
        &[&small[..150]],                // timeout: half a hello, then silence
    ];
    for parts in cases {
        let reply = raw_exchange(limen.addr, parts, Duration::ZERO).await?;
        assert!(reply.is_empty());
    }
    let failures = "limen_tls_sni_listener_parse_failures_total";
    let after = settled(
        metrics,
        &before,
        &series(failures, "reason", "timeout"),
        1.0,
    )
    .await?;
    for (reason, want) in [
        ("too_large", 1.0),
        ("malformed", 1.0),
        ("timeout", 1.0),
        ("not_tls", 0.0),
    ] {
        let got = after.delta(&before, &series(failures, "reason", reason));
        assert_eq!(got, want, "{reason}\n{}", after.text);
    }
    assert_eq!(
        after.delta(&before, "limen_policy_call_duration_seconds_count"),
        0.0
    );
    limen.stop().await
}
