//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs when absent) renders `/status`, and
//! shows a pool member going down; `/status.json` says the same.

use std::net::SocketAddr;
use std::process::Command;

use limen::observe::metrics::names;
use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests, http};

use crate::common::{WAIT, scratch};

/// The DOM Chromium renders for `url`.
async fn rendered(url: String) -> anyhow::Result<String> {
    let profile = scratch("chromium-profile");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--timeout=5000", "--dump-dom"])
            .arg(url)
            .output()
    })
    .await??;
    anyhow::ensure!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_and_shows_a_member_going_down() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let doomed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let b = doomed.local_addr()?;
    let pool = format!(
        "[metrics]\nbind = \"127.0.0.1:0\"\n\n[upstreams.pools.web]\nmembers = [\"{a}\", \"{b}\"]\n\
         [upstreams.pools.web.health]\ncheck = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\nfall = 1"
    );
    let routes = r#"routes = [ { match = "www.test", pool = "web" } ]"#;
    let limen = Running::start(&config(
        &guests::example("static-routes"),
        routes,
        "",
        &pool,
    ))
    .await?;
    let metrics = limen.metrics_addr.expect("metrics listener");
    let url = format!("http://{metrics}/status");
    let page = rendered(url.clone()).await?;
    assert!(
        page.contains("<h1>limen</h1>")
            && page.contains("Pool web")
            && page.contains("<th>connections/s</th>"),
        "{page}"
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
        serde_json::from_str(&http::get(metrics, "/status.json").await?.ok()?)?;
    let members = &json["pools"][0]["members"];
    assert_eq!(members[1]["address"], b.to_string());
    assert_eq!(members[1]["state"], "down");
    assert_eq!(json["listeners"][0]["name"], "public");
    limen.stop().await
}
