//! The status page: one self-contained HTML document (inline style, no
//! script, no external asset) that reloads itself every few seconds.

use std::fmt::Write;

use serde_json::Value;

/// Seconds between reloads.
const REFRESH: u32 = 2;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.4em}\
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}\
.up{color:#176f2c;font-weight:600}.down{color:#b3261e;font-weight:600}.ejected{color:#a15c00;font-weight:600}\
.muted{color:#777}";

/// The page for a status snapshot (`super::snapshot`).
pub(super) fn html(status: &Value) -> String {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH}\"><title>limen status</title>\
         <style>{STYLE}</style></head><body><h1>limen</h1><p>policy <b id=\"policy\">{}</b> \
         <span class=\"muted\">({}{}, configuration generation {})</span></p>",
        text(&status["policy"]["version"]),
        text(&status["policy"]["module"]),
        rules(&status["policy"]),
        text(&status["generation"]),
    );
    candidate(&mut out, &status["candidate"]);
    table(
        &mut out,
        "Listeners",
        &["name", "address", "transport", "accepted", "open"],
        rows(
            &status["listeners"],
            &["name", "address", "transport", "connections", "active"],
        ),
    );
    let routes: Vec<Vec<String>> = status["routes"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| vec![esc(k), text(v)]).collect())
        .unwrap_or_default();
    table(
        &mut out,
        "Route results",
        &["result", "connections"],
        routes,
    );
    for pool in status["pools"].as_array().into_iter().flatten() {
        let members = pool["members"].as_array().into_iter().flatten().map(|m| {
            let state = text(&m["state"]);
            vec![
                text(&m["address"]),
                format!("<span class=\"{state}\">{state}</span>"),
                text(&m["connections"]),
                text(&m["weight"]),
            ]
        });
        let title = format!(
            "Pool {} <span class=\"muted\">({}, {} retries)</span>",
            text(&pool["name"]),
            text(&pool["balance"]),
            text(&pool["retries"])
        );
        table(
            &mut out,
            &title,
            &["member", "state", "connections", "weight"],
            members.collect(),
        );
    }
    table(
        &mut out,
        "Certificates",
        &[
            "name",
            "source",
            "state",
            "expires (UTC)",
            "days left",
            "failed orders",
        ],
        status["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let state = text(&c["state"]);
                let class = if state == "issued" { "up" } else { "down" };
                vec![
                    text(&c["name"]),
                    text(&c["source"]),
                    format!("<span class=\"{class}\">{state}</span>"),
                    date(&c["not_after"]),
                    text(&c["days_left"]),
                    text(&c["failed_orders"]),
                ]
            })
            .collect(),
    );
    let (rates, bytes) = (&status["rates"], &status["bytes"]);
    let window = match rates["window_s"].as_f64() {
        Some(seconds) => format!("last {seconds} s"),
        None => "last minute (not yet sampled)".to_owned(),
    };
    table(
        &mut out,
        &format!("Traffic ({window})"),
        &[
            "connections/s",
            "bytes up/s",
            "bytes down/s",
            "bytes up",
            "bytes down",
        ],
        vec![vec![
            text(&rates["connections_per_s"]),
            text(&rates["bytes_up_per_s"]),
            text(&rates["bytes_down_per_s"]),
            text(&bytes["up"]),
            text(&bytes["down"]),
        ]],
    );
    let limits = &status["limits"];
    table(
        &mut out,
        "Limits hit",
        &["rate limited", "no slot free", "keys evicted"],
        vec![vec![
            text(&limits["rate_limited"]),
            text(&limits["slots_full"]),
            text(&limits["evicted"]),
        ]],
    );
    table(
        &mut out,
        "Recent swaps and reloads",
        &["at (UTC)", "trigger", "outcome", "live after", "refusal"],
        status["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let refusal = match c["code"].as_str() {
                    Some(code) => format!("{} {}", esc(code), text(&c["error"])),
                    None => String::new(),
                };
                vec![
                    date(&c["at"]),
                    text(&c["trigger"]),
                    text(&c["outcome"]),
                    text(&c["live"]),
                    refusal,
                ]
            })
            .collect(),
    );
    let _ = writeln!(
        out,
        "<p class=\"muted\">{} upstream connect failures · <a href=\"/status.json\">JSON</a> · \
         <a href=\"/metrics\">metrics</a></p></body></html>",
        text(&status["upstream_failures"])
    );
    out
}

/// A candidate on trial: its counts and last differences (nothing if none).
fn candidate(out: &mut String, candidate: &Value) {
    if candidate.is_null() {
        return;
    }
    let counts = ["same", "different", "failed", "dropped"].map(|k| text(&candidate[k]));
    table(
        out,
        &format!(
            "Candidate {} ({}{})",
            text(&candidate["version"]),
            text(&candidate["mode"]),
            rules(candidate)
        ),
        &["same", "different", "failed", "dropped"],
        vec![counts.to_vec()],
    );
    let fields = ["at", "client", "sni", "alpn", "live", "candidate"];
    let last = rows(&candidate["last"], &fields);
    table(out, "Its last differences", &fields, last);
}

/// `, N rules` if the policy said how many it holds (`report-routes`).
fn rules(policy: &Value) -> String {
    policy["rules"]
        .as_u64()
        .map_or_else(String::new, |n| format!(", {n} rules"))
}

fn table(out: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    let _ = write!(out, "<h2>{title}</h2><table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td class=\"muted\" colspan=\"{}\">none</td></tr>",
            head.len()
        );
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// Each object of `list`, its `fields` as escaped cells.
fn rows(list: &Value, fields: &[&str]) -> Vec<Vec<String>> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| fields.iter().map(|f| text(&item[*f])).collect())
        .collect()
}

/// A JSON value as escaped text (strings without quotes).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => esc(s),
        Value::Null => String::new(),
        other => esc(&other.to_string()),
    }
}

/// Unix seconds as a UTC date an operator reads at a glance
/// (`2026-12-06 05:44:00 UTC`); `/status.json` keeps the number.
fn date(value: &Value) -> String {
    let Some(secs) = value.as_u64() else {
        return text(value);
    };
    let at = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs));
    // humantime writes years up to 9999; past that, the number itself.
    match at.filter(|_| secs < 253_402_300_800) {
        Some(at) => {
            let rfc = humantime::format_rfc3339_seconds(at).to_string();
            format!("{} UTC", rfc.trim_end_matches('Z').replacen('T', " ", 1))
        }
        None => text(value),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_members_show_their_state() {
        let status = serde_json::json!({
            "policy": { "version": "<script>", "module": "m" },
            "pools": [{ "name": "web", "balance": "round_robin", "retries": 0,
                        "members": [{ "address": "127.0.0.1:1", "state": "down",
                                      "connections": 0, "weight": 1 }] }],
        });
        let page = html(&status);
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
        assert!(page.contains("<span class=\"down\">down</span>"));
        assert!(page.contains("http-equiv=\"refresh\""));
    }

    #[test]
    fn rule_counts_show_when_the_policy_said() {
        let status = serde_json::json!({
            "policy": { "version": "v1", "module": "m", "rules": 3 },
            "candidate": { "version": "v2", "mode": "shadow", "rules": 40 },
        });
        let page = html(&status);
        assert!(page.contains("(m, 3 rules, configuration"), "{page}");
        assert!(page.contains("Candidate v2 (shadow, 40 rules)"), "{page}");
        let silent = html(&serde_json::json!({ "policy": { "version": "v1", "module": "m" } }));
        assert!(silent.contains("(m, configuration") && !silent.contains("rules"));
    }

    #[test]
    fn times_show_as_utc_dates() {
        let status = serde_json::json!({
            "certificates": [{ "name": "shop", "source": "acme", "state": "issued",
                               "not_after": 1_796_000_000u64, "days_left": 90 }],
            "changes": [{ "at": 1_765_000_000u64, "trigger": "reload", "outcome": "applied" }],
        });
        let page = html(&status);
        assert!(page.contains("<td>2026-11-30 00:53:20 UTC</td>"), "{page}");
        assert!(page.contains("<td>2025-12-06 05:46:40 UTC</td>"), "{page}");
        assert!(!page.contains("1796000000") && page.contains("expires (UTC)"));
        assert_eq!(date(&serde_json::json!(u64::MAX)), u64::MAX.to_string());
    }
}
