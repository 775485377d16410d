//! The access log: one line per finished connection, JSON or text, to a file.

use std::time::Duration;

use limen_e2e::harness::{Running, config};
use limen_e2e::wait::eventually;
use limen_e2e::{backend, guests};

use crate::common::{WAIT, ask, raw_exchange, scratch};

/// One JSON line per connection, whatever became of it, with the fields an
/// operator reads: here a routed, a rejected and a malformed connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_line_per_connection() -> anyhow::Result<()> {
    let (up, _) = backend::raw(b"U").await?;
    let path = scratch("access.log");
    let routes = format!(
        r#"routes = [{{ match = "a.test", upstream = "{up}" }}, {{ match = "blocked.test", reject = "access_denied" }}]"#
    );
    let toml = config(
        &guests::example("static-routes"),
        &routes,
        "",
        &format!(
            "[access_log]\npath = \"{}\"\nformat = \"json\"",
            path.display()
        ),
    );
    let limen = Running::start(&toml).await?;
    let routed = limen::offline::explain::synthesise("a.test", &["h2".into(), "http/1.1".into()])?;
    assert_eq!(ask(limen.addr, &routed).await?, b"U");
    let blocked = limen::offline::explain::synthesise("blocked.test", &[])?;
    assert!(!ask(limen.addr, &blocked).await?.is_empty());
    let garbage = raw_exchange(limen.addr, &[b"\x16\x09\x09\x00\x05hello"], Duration::ZERO);
    assert!(garbage.await?.is_empty());

    let lines = lines_of(&path, 3).await?;
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;
    let find = |action: &str| {
        parsed
            .iter()
            .find(|v| v["action"] == action)
            .unwrap_or_else(|| panic!("no {action} line in {lines:?}"))
    };
    let pass = find("passthrough");
    assert_eq!(pass["listener"], "public");
    assert_eq!(pass["sni"], "a.test");
    assert_eq!(pass["alpn"], "h2,http/1.1");
    assert_eq!(pass["upstream"], up.to_string());
    assert_eq!(pass["result"], "exact");
    assert_eq!(pass["bytes_up"], routed.len());
    assert_eq!(pass["bytes_down"], 1);
    assert_eq!(pass["end"], "upstream_close");
    assert!(pass["connect_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    let version = pass["policy"].as_str().unwrap_or_default();
    assert!(
        version.len() == 12 && version.bytes().all(|b| b.is_ascii_hexdigit()),
        "{pass}"
    );
    // `limen explain` names the same version.
    let source = limen::offline::explain::HelloSource::Sni {
        sni: "a.test".into(),
        alpn: Vec::new(),
    };
    let config = limen::Config::from_toml(&toml)?;
    let explained = limen::offline::explain::explain(&config, source, "192.0.2.1:1".parse()?);
    assert_eq!(explained.await?["policy"], version);
    assert!(
        pass["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:"))
    );
    assert!(pass["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let reject = find("reject");
    assert_eq!(
        (&reject["sni"], &reject["detail"], &reject["end"]),
        (
            &"blocked.test".into(),
            &"access_denied".into(),
            &"rejected".into()
        )
    );
    assert!(reject["upstream"].is_null() && reject["connect_ms"].is_null());
    let bad = find("none");
    assert_eq!(
        (&bad["end"], &bad["result"]),
        (&"bad_hello".into(), &serde_json::Value::Null)
    );
    for line in &parsed {
        let total = line["total_ms"].as_f64().expect("total_ms");
        assert!(
            total >= line["peek_ms"].as_f64().expect("peek_ms"),
            "{line}"
        );
    }
    limen.stop().await?;
    // Nothing else arrives: one line per connection, not per event.
    assert_eq!(lines_of(&path, 3).await?.len(), 3);
    Ok(())
}

/// The text format, to a file: `key=value` after the timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_access_log_is_key_value() -> anyhow::Result<()> {
    let (up, _) = backend::raw(b"U").await?;
    let path = scratch("access.txt");
    let toml = config(
        &guests::example("static-routes"),
        &format!(r#"default = "{up}""#),
        "",
        &format!("[access_log]\npath = \"{}\"", path.display()),
    );
    let limen = Running::start(&toml).await?;
    let hello = limen::offline::explain::synthesise("t.test", &[])?;
    assert_eq!(ask(limen.addr, &hello).await?, b"U");
    let lines = lines_of(&path, 1).await?;
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert!(fields[0].ends_with('Z'), "{}", lines[0]);
    let value = |key: &str| {
        fields
            .iter()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {}", lines[0]))
    };
    assert_eq!(value("sni"), "t.test");
    assert_eq!(value("action"), "passthrough");
    assert_eq!(value("result"), "fallback");
    assert_eq!(value("upstream"), up.to_string());
    assert_eq!(value("bytes_up"), hello.len().to_string());
    assert_eq!(value("end"), "upstream_close");
    limen.stop().await
}

/// A pool member that takes the hello and never answers: the connection
/// ends at the idle timeout while limen waits for the member's first byte
/// (a retry was left), and its line counts the hello that went up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ended_before_the_members_first_byte_counts_what_went_up() -> anyhow::Result<()>
{
    // Silent members; `retries = 1` leaves a retry, so limen waits for the
    // first byte.
    let mut members = Vec::new();
    let mut held = Vec::new();
    for _ in 0..2 {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        members.push(format!("\"{}\"", silent.local_addr()?));
        held.push(tokio::spawn(async move {
            let mut streams = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                streams.push(stream);
            }
        }));
    }
    let path = scratch("access.log");
    let extra = format!(
        "[limits]\nidle_timeout = \"300ms\"\n[access_log]\npath = \"{}\"\nformat = \"json\"\n\
         [upstreams.pools.web]\nmembers = [{}]\nretries = 1",
        path.display(),
        members.join(", ")
    );
    let routes = r#"routes = [{ match = "a.test", pool = "web" }]"#;
    let limen = Running::with_static_routes(routes, &extra).await?;
    let hello = limen::offline::explain::synthesise("a.test", &[])?;
    // Until limen closes it: the client sends nothing after the hello.
    assert!(ask(limen.addr, &hello).await?.is_empty());
    let line: serde_json::Value = serde_json::from_str(&lines_of(&path, 1).await?[0])?;
    assert_eq!(line["end"], "idle_timeout", "{line}");
    assert_eq!(line["bytes_up"], hello.len(), "{line}");
    assert_eq!(line["bytes_down"], 0, "{line}");
    held.iter().for_each(tokio::task::JoinHandle::abort);
    limen.stop().await
}

/// The file's lines once it has at least `n` (at most 10 s).
pub(crate) async fn lines_of(path: &std::path::Path, n: usize) -> anyhow::Result<Vec<String>> {
    let read = async || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Ok(text.lines().map(str::to_owned).collect::<Vec<String>>())
    };
    let what = format!("{n} lines in {}", path.display());
    eventually(WAIT, &what, read, |lines| lines.len() >= n).await
}
