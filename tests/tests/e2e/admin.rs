//! The admin endpoint against hostile local users: TCP needs a token, and
//! idle connections cannot lock the operator out.

use std::time::{Duration, Instant};

use limen::control::admin::client;
use limen::control::admin::protocol::{Answer, Request};
use limen_e2e::backend;
use limen_e2e::guests;
use limen_e2e::harness::{Running, config};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

use crate::common::{WAIT, limen_check, scratch};

const TOKEN: &str = "0123456789abcdef-secret";

#[test]
fn a_tcp_admin_endpoint_without_a_token_is_refused_with_a_coded_error() {
    let toml = config(
        &guests::example("static-routes"),
        r#"default = "127.0.0.1:9""#,
        "",
        "[admin]\nbind = \"127.0.0.1:9901\"",
    );
    let out = limen_check(&toml).run().expect("run limen");
    let stderr = out.stderr;
    assert!(!out.ok, "{stderr}");
    assert!(
        stderr.contains("E003") && stderr.contains("token_file"),
        "{stderr}"
    );
}

/// A connection from 127.0.0.2 (the other local user) that sends nothing.
async fn idle_from_attacker(
    endpoint: std::net::SocketAddr,
) -> anyhow::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.2:0".parse()?)?;
    Ok(socket.connect(endpoint).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_admin_connections_cannot_delay_the_operators_status() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let token_file = scratch("admin.token");
    limen_e2e::pki::write_private(&token_file, format!("{TOKEN}\n").as_bytes())?;
    // A free loopback port for the endpoint (the harness reports listeners only).
    let endpoint = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let toml = config(
        &guests::example("static-routes"),
        &format!(r#"default = "{a}""#),
        "",
        &format!(
            "[admin]\nbind = \"{endpoint}\"\ntoken_file = \"{}\"",
            token_file.display()
        ),
    );
    let limen = Running::start(&toml).await?;
    // Far more idle connections than the endpoint lets wait.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(idle_from_attacker(endpoint).await?);
    }
    let started = Instant::now();
    let status = tokio::time::timeout(
        WAIT,
        client::call(
            &endpoint.to_string(),
            Some(TOKEN.into()),
            Request::Status,
            &[],
        ),
    )
    .await??;
    let took = started.elapsed();
    assert!(matches!(status, Answer::Status(_)), "{status:?}");
    assert!(
        took < Duration::from_secs(1),
        "status took {took:?} behind 64 idle connections"
    );
    // The oldest idle ones were evicted with an answer saying why.
    let mut answer = String::new();
    tokio::time::timeout(WAIT, idle[0].read_to_string(&mut answer)).await??;
    assert!(answer.contains("evicted"), "{answer}");
    // The rest get theirs once the request-line deadline passes: nothing
    // is held for longer.
    let last = idle.last_mut().expect("64 of them");
    let mut answer = String::new();
    tokio::time::timeout(WAIT, last.read_to_string(&mut answer)).await??;
    assert!(answer.contains("not received in time"), "{answer}");
    limen.stop().await
}
