//! limen in-process on loopback, from a config written by the test.

use std::net::SocketAddr;
use std::time::Duration;

use limen::control::ControlHandle;
use limen::observe::metrics::Metrics;
use limen::{Config, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::wait::{WAIT, eventually, last_seen};

/// A running limen.
pub struct Running {
    /// First listener's address.
    pub addr: SocketAddr,
    /// Every listener: (name, address).
    pub addrs: Vec<(String, SocketAddr)>,
    /// Its counters.
    pub metrics: Metrics,
    /// Where `/metrics` is served, if the config has `[metrics]`.
    pub metrics_addr: Option<SocketAddr>,
    /// Where `/status` and `/status.json` are served, if the config has
    /// `[status]` (see [`STATUS`]).
    pub status_addr: Option<SocketAddr>,
    /// Swaps and reloads, as the admin endpoint and SIGHUP make them.
    pub control: ControlHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Start limen from TOML text (listeners should bind port 0).
    pub async fn start(toml: &str) -> anyhow::Result<Running> {
        let config = Config::from_toml(toml)?;
        let server = Server::bind(config).await?;
        let addrs: Vec<(String, SocketAddr)> = server
            .local_addrs()
            .into_iter()
            .map(|(n, a)| (n.to_string(), a))
            .collect();
        let metrics = server.metrics();
        let metrics_addr = server.metrics_addr();
        let status_addr = server.status_addr();
        let control = server.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(Running {
            addr: addrs[0].1,
            addrs,
            metrics,
            metrics_addr,
            status_addr,
            control,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Start limen with the `static-routes` example deciding (`routes`: its
    /// `[policy.config]`), and `extra` config.
    pub async fn with_static_routes(routes: &str, extra: &str) -> anyhow::Result<Running> {
        let module = crate::guests::example("static-routes");
        Running::start(&config(&module, routes, "", extra)).await
    }

    /// Ask limen to stop and wait (bounded) until it has.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task).await??;
        }
        Ok(())
    }

    /// Wait (at most [`WAIT`]) until a counter reaches `value`, and return
    /// what it ended at (the last value seen, if it never got there): counts
    /// land after the connection's close, which a client may see first.
    pub async fn counter_reaches(&self, name: &str, labels: &[(&str, &str)], value: u64) -> u64 {
        self.counter_reaches_within(WAIT, name, labels, value)
            .await
            .or_else(last_seen)
            .unwrap_or_else(|_| self.counter(name, labels))
    }

    /// Wait (at most `within`) until a counter reaches `value`: its value
    /// then, or a [`Timeout`](crate::wait::Timeout) with the last one seen.
    pub async fn counter_reaches_within(
        &self,
        within: Duration,
        name: &str,
        labels: &[(&str, &str)],
        value: u64,
    ) -> anyhow::Result<u64> {
        let want = format!("reach {value}");
        self.value_until(within, name, labels, &want, |now| now >= value)
            .await
    }

    /// Wait (at most `within`) until a gauge reads exactly `value`.
    pub async fn gauge_reads(
        &self,
        within: Duration,
        name: &str,
        labels: &[(&str, &str)],
        value: u64,
    ) -> anyhow::Result<()> {
        let want = format!("read {value}");
        self.value_until(within, name, labels, &want, |now| now == value)
            .await?;
        Ok(())
    }

    /// Wait (at most `within`) until a series' value is as `want` says.
    async fn value_until(
        &self,
        within: Duration,
        name: &str,
        labels: &[(&str, &str)],
        want: &str,
        done: impl Fn(u64) -> bool,
    ) -> anyhow::Result<u64> {
        let what = format!("{} to {want}", series(name, labels));
        let look = async || Ok(self.counter(name, labels));
        eventually(within, &what, look, |now| done(*now)).await
    }

    /// A counter's (or a gauge's) value.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.metrics.counter(name, labels)
    }
}

/// `name{key="value",...}`, for messages.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// `[metrics]` and the status page (`[status]`), each on a loopback port of
/// its own, for a test's `extra`: `/metrics` at [`Running::metrics_addr`],
/// `/status` at [`Running::status_addr`].
pub const METRICS_AND_STATUS: &str = "
[metrics]
bind = \"127.0.0.1:0\"

[status]
bind = \"127.0.0.1:0\"
";

/// The status page alone (`[status]` on a loopback port), for `extra`.
pub const STATUS: &str = "
[status]
bind = \"127.0.0.1:0\"
";

/// TOML for one listener on port 0, a policy module, its config table (TOML
/// inline-table body), and the allow-list; `extra` is appended verbatim.
pub fn config(
    module: &std::path::Path,
    policy_config: &str,
    extra_policy: &str,
    extra: &str,
) -> String {
    toml(
        &format!("module = \"{}\"", module.display()),
        extra_policy,
        &format!("[policy.config]\n{policy_config}\n"),
        extra,
    )
}

/// [`config`] for an instance whose policy (module, config and samples)
/// comes from `[source.etcd]`, which `extra` holds: no module, no table.
pub fn sourced_config(extra_policy: &str, extra: &str) -> String {
    toml("", extra_policy, "", extra)
}

fn toml(module: &str, extra_policy: &str, policy_config: &str, extra: &str) -> String {
    // The product's 5 ms wall-clock deadline counts time the OS spends running
    // other threads; with the suite's tests in parallel on two cores a policy
    // call was preempted past it (1 in ~10,000 calls). Tests that are not about
    // the deadline get one no scheduler hiccup reaches; `faults.rs` tests it.
    let default_timeout = if extra_policy.contains("timeout") {
        ""
    } else {
        "timeout = \"250ms\""
    };
    format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[policy]
{module}
{default_timeout}
{extra_policy}

{policy_config}
[upstreams]
allow = ["127.0.0.1/32"]

{extra}
"#
    )
}

/// TOML for a QUIC listener named `quic` on `127.0.0.1:port` (0: any),
/// beside a TCP listener `tcp` on the same port when `tcp`, routing by the
/// `static-routes` guest with `routes` (its inline tables, comma separated),
/// loopback upstreams allowed, `extra` sections, and `[limits]` with a 1 s
/// shutdown grace (open flows drain within it, as connections do) and
/// `limits`.
pub fn quic_config(port: u16, tcp: bool, routes: &str, limits: &str, extra: &str) -> String {
    let tcp = if tcp {
        format!("[[listeners]]\nname = \"tcp\"\nbind = \"127.0.0.1:{port}\"\n\n")
    } else {
        String::new()
    };
    format!(
        r#"{tcp}[[listeners]]
name = "quic"
bind = "127.0.0.1:{port}"
protocol = "quic"

[policy]
module = "{}"
timeout = "250ms"

[policy.config]
routes = [{routes}]

[upstreams]
allow = ["127.0.0.1/32"]

{extra}

[limits]
shutdown_grace = "1s"
{limits}
"#,
        crate::guests::example("static-routes").display()
    )
}
