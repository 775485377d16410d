//! limen in-process on loopback, from a config written by the test.

use std::net::SocketAddr;
use std::time::Duration;

use limen::control::ControlHandle;
use limen::observe::metrics::Metrics;
use limen::{Config, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
            control,
            stop: Some(stop),
            task: Some(task),
        })
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

    /// Wait (at most 10 s) until a counter reaches `value`, and return what it
    /// ended at: counts land after the connection's close, which a client may
    /// see first.
    pub async fn counter_reaches(&self, name: &str, labels: &[(&str, &str)], value: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.counter(name, labels);
            if now >= value || tokio::time::Instant::now() >= deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A counter's value.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.metrics.counter(name, labels)
    }
}

/// TOML for one listener on port 0, a policy module, its config table (TOML
/// inline-table body), and the allow-list; `extra` is appended verbatim.
pub fn config(
    module: &std::path::Path,
    policy_config: &str,
    extra_policy: &str,
    extra: &str,
) -> String {
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
module = "{module}"
{default_timeout}
{extra_policy}

[policy.config]
{policy_config}

[upstreams]
allow = ["127.0.0.1/32"]

{extra}
"#,
        module = module.display()
    )
}
