//! Socket activation: limen started by systemd's own launcher,
//! `systemd-socket-activate`, which listens first and starts limen on the
//! first connection with the sockets as `LISTEN_FDS`: that connection, queued
//! before limen ran, is served, and each `[[listeners]]` entry takes its
//! socket by name or by address.

use std::process::{Command, Stdio};

use anyhow::Context;
use limen_e2e::{backend, cli, guests};

use crate::common::{ask, config_file, scratch};

/// A port free now on loopback (the launcher binds it a moment later).
fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

#[tokio::test]
async fn limen_serves_on_the_sockets_systemd_passes() -> anyhow::Result<()> {
    let (upstream, _reports) = backend::raw(b"A").await?;
    let (web, other) = (free_port()?, free_port()?);
    let config = config_file(&format!(
        r#"[[listeners]]
name = "web"
bind = "127.0.0.1:0"
[[listeners]]
name = "other"
bind = "{other}"
[policy]
module = "{module}"
[policy.config]
default = "{upstream}"
routes = []
[upstreams]
allow = ["127.0.0.1/32"]
"#,
        module = guests::example("static-routes").display(),
    ));
    let log = scratch("activated.log");
    // `web` is taken by its name; the second socket's name matches no
    // listener, so `other` takes it by its address.
    let mut launcher = Command::new("systemd-socket-activate")
        .arg(format!("--listen={web}"))
        .arg(format!("--listen={other}"))
        .arg("--fdname=web:unnamed")
        .arg(cli::binary())
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::from(std::fs::File::create(&log)?))
        .spawn()
        .context("systemd-socket-activate (Debian's systemd package; .ci/run installs it)")?;
    let hello = limen::offline::explain::synthesise("t.test", &[])?;
    // The launcher listens before limen exists: retry only until it does.
    let mut first = Err(std::io::Error::other("not tried"));
    for _ in 0..100 {
        first = ask(web, &hello).await;
        if first.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    let result = async {
        anyhow::ensure!(first? == b"A", "the first connection (it started limen)");
        anyhow::ensure!(ask(web, &hello).await? == b"A", "web, by name");
        anyhow::ensure!(ask(other, &hello).await? == b"A", "other, by address");
        anyhow::ensure!(
            !logged().contains("process.inherited_unused"),
            "every socket taken"
        );
        Ok(())
    }
    .await;
    let _ = launcher.kill();
    let _ = launcher.wait();
    result.map_err(|e| e.context(format!("limen's log:\n{}", logged())))
}
