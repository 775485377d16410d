//! The QUIC test kit proved against itself, no limen in between: aioquic
//! HTTP/3 servers answer the aioquic client directly, a client that moves
//! to a new port mid-connection still gets its answer, and a refusal is
//! reported with the CONNECTION_CLOSE's code. The QUIC routing tests rely
//! on all three.

use std::time::Duration;

use limen_e2e::quic::{H3Get, H3Server, h3_get, h3_servers};

use crate::common::scratch;

/// One CA, a leaf per name, a server per name: (servers, CA path).
async fn servers(names: &[&str]) -> anyhow::Result<(Vec<H3Server>, std::path::PathBuf)> {
    h3_servers(&scratch("quic-kit"), names).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_h3_servers_answer_by_name() -> anyhow::Result<()> {
    let (servers, ca) = servers(&["a.test", "b.test"]).await?;
    for (server, name) in servers.iter().zip(["a.test", "b.test"]) {
        let body = h3_get(server.addr(), name, &ca, "/hello").await?;
        assert_eq!(body, format!("{name} h3 /hello"), "log:\n{}", server.log());
        let log = server.log();
        assert!(
            log.contains(&format!("handshake sni={name} alpn=h3 version=0x1")),
            "{log}"
        );
        assert!(
            log.contains(&format!("request sni={name} authority={name} method=GET")),
            "{log}"
        );
    }
    // QUIC v2 (RFC 9369) is accepted too: the issue asks limen to read both.
    let body = H3Get::new(servers[0].addr(), "a.test", &ca)
        .path("/v2")
        .quic_v2()
        .body()
        .await?;
    assert_eq!(body, "a.test h3 /v2");
    assert!(
        servers[0].log().contains("version=0x6b3343cf"),
        "{}",
        servers[0].log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_completes_after_the_client_port_changes() -> anyhow::Result<()> {
    let (servers, ca) = servers(&["a.test"]).await?;
    let server = &servers[0];
    let reply = H3Get::new(server.addr(), "a.test", &ca)
        .path("/moved")
        .rebind_after(Duration::from_millis(200))
        .run()
        .await?;
    assert!(
        reply.success,
        "{}\nserver log:\n{}",
        reply.stderr,
        server.log()
    );
    assert_eq!(reply.body, "a.test h3 /moved");
    let (from, to) = reply.rebound().expect("the client says it rebound");
    assert_ne!(from, to);
    // The server saw the handshake from one port and the request from the
    // other: the request really travelled on the new path.
    let log = server.log();
    assert!(
        log.contains(&format!(
            "handshake sni=a.test alpn=h3 version=0x1 from=127.0.0.1:{from}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("path from=127.0.0.1:{from} to=127.0.0.1:{to}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("path=/moved from=127.0.0.1:{to}")),
        "{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_reported_with_its_close_code() -> anyhow::Result<()> {
    let (servers, ca) = servers(&["a.test"]).await?;
    let started = std::time::Instant::now();
    // A server without the offered ALPN sends CONNECTION_CLOSE with
    // CRYPTO_ERROR 0x100 + no_application_protocol (120): what limen's
    // `reject` is to look like to a client.
    let reason = H3Get::new(servers[0].addr(), "a.test", &ca)
        .alpn("h3-29")
        .refused()
        .await?;
    assert!(
        reason.contains("closed: error_code=0x178 frame_type=0x6 by=peer reason="),
        "{reason}"
    );
    // At once, not after the client's timeout.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // A certificate for another name: the client closes (by=local) with
    // 0x100 + bad_certificate (42).
    let reason = H3Get::new(servers[0].addr(), "c.test", &ca)
        .refused()
        .await?;
    assert!(reason.contains("closed: error_code=0x12a"), "{reason}");
    assert!(reason.contains("by=local"), "{reason}");
    Ok(())
}
