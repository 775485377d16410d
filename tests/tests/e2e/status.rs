//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs when absent) renders `/status`,
//! shows a certificate's expiry as a UTC date and a pool member going down;
//! `/status.json` says the same. And its protection, both ways: served on
//! `[status]`'s own bind only (the metrics listener answers it with a 404,
//! and it answers `/metrics` with one), one port for both when the binds are
//! equal, and a bind off loopback refused without `allow_public`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use limen::observe::metrics::names;
use limen_e2e::harness::{METRICS_AND_STATUS, Running, STATUS, config};
use limen_e2e::pki::write_private;
use limen_e2e::{backend, chromium, free_port, guests, http};

use crate::common::{WAIT, limen_check, scratch};

/// The DOM Chromium renders for `url`.
async fn rendered(url: String) -> anyhow::Result<String> {
    Ok(chromium::render(&url, &scratch("chromium-profile"), &[])
        .await?
        .dom)
}

/// The state the page shows for `member` (the cell after its address).
fn state_of(dom: &str, member: SocketAddr) -> Option<&str> {
    let row = dom
        .split("<tr>")
        .find(|row| row.contains(&format!("<td>{member}</td>")))?;
    ["up", "down", "ejected"]
        .into_iter()
        .find(|state| row.contains(&format!("class=\"{state}\">{state}</span>")))
}

/// A `[certificates.site]` entry whose certificate expires on the 15th of
/// June next year, midnight UTC: its TOML, and that date as the page
/// writes it.
fn certificate_expiring_next_year() -> anyhow::Result<(String, String)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    // Within a day of new year the estimate may be off by one: still a year ahead.
    let year = 1970 + (now / 31_556_952) as i32 + 1;
    let mut params = rcgen::CertificateParams::new(vec!["site.test".to_owned()])?;
    params.not_after = rcgen::date_time_ymd(year, 6, 15);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let (chain, key_path): (PathBuf, PathBuf) = (scratch("site.pem"), scratch("site.key"));
    std::fs::write(&chain, cert.pem())?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    let toml = format!(
        "[certificates.site]\nchain = \"{}\"\nkey = \"{}\"\n",
        chain.display(),
        key_path.display()
    );
    Ok((toml, format!("{year}-06-15 00:00:00 UTC")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_and_shows_a_member_going_down() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let doomed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let b = doomed.local_addr()?;
    let (certificate, expires) = certificate_expiring_next_year()?;
    let pool = format!(
        "{METRICS_AND_STATUS}\n{certificate}\n[upstreams.pools.web]\nmembers = [\"{a}\", \"{b}\"]\n\
         [upstreams.pools.web.health]\ncheck = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\nfall = 1"
    );
    let routes = r#"routes = [ { match = "www.test", pool = "web" } ]"#;
    let limen = Running::with_static_routes(routes, &pool).await?;
    let status = limen.status_addr.expect("status listener");
    let url = format!("http://{status}/status");
    let page = rendered(url.clone()).await?;
    assert!(
        page.contains("<h1>limen</h1>")
            && page.contains("Pool web")
            && page.contains("<th>connections/s</th>"),
        "{page}"
    );
    // The certificate's expiry: a UTC date, not the unix seconds the JSON keeps.
    let row = page
        .split("<tr>")
        .find(|row| row.contains("<td>site</td>"))
        .unwrap_or_else(|| panic!("no certificate row: {page}"));
    assert!(
        page.contains("<th>expires (UTC)</th>") && row.contains(&format!("<td>{expires}</td>")),
        "{row}"
    );
    assert_eq!(
        (state_of(&page, a), state_of(&page, b)),
        (Some("up"), Some("up")),
        "{page}"
    );
    drop(doomed);
    let labels = [("pool", "web"), ("member", &b.to_string()[..])];
    limen
        .gauge_reads(WAIT, names::UPSTREAM_MEMBER_HEALTHY, &labels, 0)
        .await?;
    let page = rendered(url).await?;
    assert_eq!(
        (state_of(&page, a), state_of(&page, b)),
        (Some("up"), Some("down")),
        "{page}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&http::get(status, "/status.json").await?.ok()?)?;
    let members = &json["pools"][0]["members"];
    assert_eq!(members[1]["address"], b.to_string());
    assert_eq!(members[1]["state"], "down");
    assert_eq!(json["listeners"][0]["name"], "public");
    let not_after = json["certificates"][0]["not_after"]
        .as_u64()
        .expect("unix seconds");
    assert_eq!(json["certificates"][0]["name"], "site");
    assert!(!page.contains(&not_after.to_string()), "{page}");
    limen.stop().await
}

/// The status line of `GET path` from `addr`.
async fn answer(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    Ok(http::get(addr, path).await?.status)
}

const OK: &str = "HTTP/1.1 200 OK";
const NOT_FOUND: &str = "HTTP/1.1 404 Not Found";

fn start_toml(extra: &str) -> String {
    let routes = r#"default = "127.0.0.1:9""#;
    config(&guests::example("static-routes"), routes, "", extra)
}

#[tokio::test]
async fn the_status_page_is_served_on_its_own_bind_and_not_on_the_metrics_one() -> anyhow::Result<()>
{
    let limen = Running::start(&start_toml(METRICS_AND_STATUS)).await?;
    let metrics = limen.metrics_addr.expect("metrics listener");
    let status = limen.status_addr.expect("status listener");
    assert_ne!(metrics, status);
    // Its own bind: the page and its JSON.
    let page = http::get(status, "/status").await?.ok()?;
    assert!(page.contains("<h1>limen</h1>"), "{page}");
    let json: serde_json::Value =
        serde_json::from_str(&http::get(status, "/status.json").await?.ok()?)?;
    assert_eq!(json["listeners"][0]["name"], "public");
    assert_eq!(answer(status, "/metrics").await?, NOT_FOUND);
    // The metrics bind: /metrics as ever, the page nowhere.
    let text = http::get(metrics, "/metrics").await?.ok()?;
    assert!(text.contains(names::CONNECTIONS), "{text}");
    for path in ["/status", "/status.json"] {
        let refused = http::get(metrics, path).await?;
        assert_eq!(refused.status, NOT_FOUND, "{path}");
        assert!(!refused.body.contains("limen"), "{path}: {}", refused.body);
    }
    limen.stop().await
}

#[tokio::test]
async fn equal_binds_share_one_port_and_status_alone_needs_no_metrics() -> anyhow::Result<()> {
    let port = free_port()?;
    let shared = format!(
        "[metrics]\nbind = \"127.0.0.1:{port}\"\n\n[status]\nbind = \"127.0.0.1:{port}\"\n"
    );
    let limen = Running::start(&start_toml(&shared)).await?;
    let addr = limen.metrics_addr.expect("metrics listener");
    assert_eq!(limen.status_addr, Some(addr));
    for path in ["/metrics", "/status", "/status.json"] {
        assert_eq!(answer(addr, path).await?, OK, "{path}");
    }
    limen.stop().await?;

    let limen = Running::start(&start_toml(STATUS)).await?;
    assert_eq!(limen.metrics_addr, None);
    let status = limen.status_addr.expect("status listener");
    assert_eq!(answer(status, "/status").await?, OK);
    assert_eq!(answer(status, "/metrics").await?, NOT_FOUND);
    limen.stop().await
}

#[tokio::test]
async fn a_status_bind_that_is_taken_is_refused_with_e012() -> anyhow::Result<()> {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = taken.local_addr()?;
    let toml = start_toml(&METRICS_AND_STATUS.replace(
        "[status]\nbind = \"127.0.0.1:0\"",
        &format!("[status]\nbind = \"{addr}\""),
    ));
    let error = match Running::start(&toml).await {
        Ok(limen) => {
            limen.stop().await?;
            anyhow::bail!("limen started with {addr} taken")
        }
        Err(error) => error.to_string(),
    };
    assert!(
        error.starts_with(&format!("E012 cannot serve the status page on {addr}")),
        "{error}"
    );
    Ok(())
}

#[test]
fn check_refuses_a_status_bind_off_loopback_unless_allow_public() {
    let public = "[status]\nbind = \"0.0.0.0:9902\"\n";
    let out = limen_check(&start_toml(public)).run().expect("run limen");
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("E003") && out.stderr.contains("allow_public = true"),
        "{}",
        out.stderr
    );
    let allowed = format!("{public}allow_public = true\n");
    let out = limen_check(&start_toml(&allowed)).run().expect("run limen");
    assert!(out.ok, "{}", out.stderr);
}
