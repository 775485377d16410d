//! Hostile clients: stalled hellos (a slowloris) get a budget of their own,
//! per client address and per listener, so they cannot take the connections
//! good clients need; under pressure the hello deadline shortens.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{WAIT, ask};

const FAILURES: &str = "limen_tls_sni_listener_parse_failures_total";

/// A connection from `from` that sends the first 9 bytes of a hello (a
/// valid record and handshake header) and then nothing; `None` when limen
/// reset it so fast that even the connect reported it.
async fn stalled(to: SocketAddr, from: IpAddr, hello: &[u8]) -> anyhow::Result<Option<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let mut stream = match socket.connect(to).await {
        Ok(stream) => stream,
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    // A connection limen refused may be reset before the prefix is sent:
    // that is for the caller to see when it reads.
    let _ = stream.write_all(&hello[..9]).await;
    Ok(Some(stream))
}

/// Whether the peer closed (or reset) `stream` within `within`.
async fn closed_within(stream: &mut Option<TcpStream>, within: Duration) -> bool {
    let Some(stream) = stream else {
        return true;
    };
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

async fn start(limits: &str) -> anyhow::Result<(Running, SocketAddr)> {
    let (up, _) = backend::raw(b"U").await?;
    let toml = config(
        &guests::example("static-routes"),
        &format!(r#"default = "{up}""#),
        "",
        &format!("[limits]\n{limits}"),
    );
    Ok((Running::start(&toml).await?, up))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holding_stalled_hellos_gets_its_share_and_good_clients_keep_going()
-> anyhow::Result<()> {
    let (limen, _) = start("max_pending_hellos_per_client = 64").await?;
    let hello = limen::offline::explain::synthesise("a.test", &[])?;
    let attacker: IpAddr = "127.0.0.2".parse()?;
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(stalled(limen.addr, attacker, &hello).await?);
    }
    let labels = [("listener", "public"), ("reason", "client_pending_limit")];
    let refused = limen.counter_reaches(FAILURES, &labels, 936).await;
    assert_eq!(refused, 936, "all but the attacker's 64 closed at accept");
    // Those were reset at once; the 64 admitted still wait for their hello
    // (which 64: the order two workers accept in).
    let mut open = 0;
    for stream in &mut held {
        if !closed_within(stream, Duration::from_millis(20)).await {
            open += 1;
        }
    }
    assert_eq!(open, 64);
    // Good clients from another address are not held back at all.
    for _ in 0..200 {
        let reply = tokio::time::timeout(WAIT, ask(limen.addr, &hello)).await??;
        assert_eq!(reply, b"U");
    }
    let routed = limen.counter("limen_connections_total", &[("listener", "public")]);
    assert!(routed >= 1200, "{routed}");
    drop(held);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_budget_caps_all_addresses_and_pressure_shortens_the_deadline()
-> anyhow::Result<()> {
    let (limen, _) = start("max_pending_hellos = 10\nhello_timeout = \"5s\"").await?;
    let hello = limen::offline::explain::synthesise("a.test", &[])?;
    let mut held = Vec::new();
    for i in 0..10u8 {
        let from = IpAddr::from([127, 0, 0, 2 + i]);
        held.push(stalled(limen.addr, from, &hello).await?);
        // In order: the budget admits them one after the other.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut eleventh = stalled(limen.addr, IpAddr::from([127, 0, 0, 99]), &hello).await?;
    assert!(
        closed_within(&mut eleventh, WAIT).await,
        "over the budget: closed"
    );
    let labels = [("listener", "public"), ("reason", "pending_limit")];
    assert_eq!(limen.counter_reaches(FAILURES, &labels, 1).await, 1);
    // Past half the budget (the sixth on), the deadline is a fifth: 1 s.
    assert!(closed_within(&mut held[9], Duration::from_secs(3)).await);
    assert!(closed_within(&mut held[5], Duration::from_secs(1)).await);
    // The first five keep the full 5 s.
    assert!(!closed_within(&mut held[0], Duration::from_millis(500)).await);
    let timeouts = [("listener", "public"), ("reason", "timeout")];
    assert_eq!(limen.counter_reaches(FAILURES, &timeouts, 5).await, 5);
    // Room again: a good client gets through.
    let reply = tokio::time::timeout(WAIT, ask(limen.addr, &hello)).await??;
    assert_eq!(reply, b"U");
    limen.stop().await
}

/// After a storm the heap goes back to the kernel: the trim is asked for
/// once open connections fall far below their peak. (What it gives back is
/// measured by `bench/storm.sh`: a figure, not a test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fall_in_open_connections_gives_the_heap_back() -> anyhow::Result<()> {
    let (limen, _) = start("hello_timeout = \"30s\"").await?;
    let hello = limen::offline::explain::synthesise("a.test", &[])?;
    const TRIMS: &str = "limen_memory_trims_total";
    let mut held = Vec::new();
    // 1,100 stalled hellos, 55 from each of 20 addresses (under the
    // per-client budget of 64).
    for i in 0..1100u32 {
        let from = IpAddr::from([127, 0, 1, 2 + (i / 55) as u8]);
        held.push(stalled(limen.addr, from, &hello).await?);
    }
    let accepted = limen
        .counter_reaches("limen_connections_total", &[("listener", "public")], 1100)
        .await;
    assert_eq!(accepted, 1100);
    assert!(held.iter().all(Option::is_some), "none refused");
    // Held while the once-a-second check sees them: no fall, no trim.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(limen.counter(TRIMS, &[]), 0, "no trim while they are open");
    drop(held);
    assert_eq!(
        limen.counter_reaches(TRIMS, &[], 1).await,
        1,
        "one trim after the fall"
    );
    // A good client is served as before.
    let reply = tokio::time::timeout(WAIT, ask(limen.addr, &hello)).await??;
    assert_eq!(reply, b"U");
    limen.stop().await
}
