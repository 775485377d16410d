//! What a QUIC listener does with datagrams that are not a whole, valid
//! Initial, from plain UDP sockets sending the captured Chromium 148 flight
//! (`../shared/testdata/quic/`, its post-quantum hello over two packets):
//! dropped and counted by reason, never answered; a pending client bounded
//! in number and time; a rejected one answered with one small
//! CONNECTION_CLOSE (the 3x bound itself is close_initial's, unit-tested in
//! the hello crate); and a completed flight replayed to the upstream byte
//! for byte, in order.

use std::net::SocketAddr;
use std::time::Duration;

use limen_e2e::harness::{Running, quic_config};
use limen_e2e::shared_dir;
use limen_e2e::wait::eventually;
use tokio::net::UdpSocket;

/// One captured datagram.
fn capture(name: &str) -> Vec<u8> {
    let path = shared_dir().join("testdata/quic").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// limen with one QUIC listener: `a.test` (Chromium's SNI) to `upstream`,
/// or rejected when `upstream` is `None`.
async fn limen(upstream: Option<SocketAddr>) -> anyhow::Result<Running> {
    let route = match upstream {
        Some(addr) => format!("{{ match = \"a.test\", upstream = \"{addr}\" }}"),
        None => "{ match = \"a.test\", reject = \"access_denied\" }".to_owned(),
    };
    let limits = "hello_timeout = \"1s\"\nmax_pending_initials_per_client = 1";
    let toml = quic_config(0, false, &route, limits, "");
    Running::start(&toml).await
}

fn dropped(limen: &Running, reason: &str) -> u64 {
    limen.counter(
        "limen_quic_dropped_total",
        &[("listener", "quic"), ("reason", reason)],
    )
}

async fn client() -> anyhow::Result<UdpSocket> {
    Ok(UdpSocket::bind("127.0.0.1:0").await?)
}

/// Whatever comes back to `socket` within `wait`.
async fn answer(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buffer = vec![0; 65_535];
    let received = tokio::time::timeout(wait, socket.recv(&mut buffer)).await;
    let n = received.ok()?.ok()?;
    buffer.truncate(n);
    Some(buffer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_partial_initials_are_dropped_counted_and_bounded() -> anyhow::Result<()> {
    let limen = limen(None).await?;
    let addr = limen.addr;
    let first = capture("chromium148-pq-1of2.bin");

    // Too short to be a client's Initial (RFC 9000 §14.1): not answered.
    let small = client().await?;
    small.send_to(&first[..100], addr).await?;
    assert_eq!(answer(&small, Duration::from_millis(300)).await, None);
    assert_eq!(dropped(&limen, "short_datagram"), 1);

    // Half of Chromium's hello, from three ports of one address: each is
    // held, unanswered, until the address is over
    // max_pending_initials_per_client (1 per worker: the kernel spreads the
    // three over limen's two workers, so one or two are held).
    let mut halves = Vec::new();
    for _ in 0..3 {
        let half = client().await?;
        half.send_to(&first, addr).await?;
        halves.push(half);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = dropped(&limen, "max_pending_initials_per_client");
    assert!((1..=2).contains(&refused), "{refused} of 3 refused");
    // Their hellos never complete: forgotten after hello_timeout, and none
    // was ever answered.
    for half in &halves {
        assert_eq!(answer(half, Duration::from_millis(900)).await, None);
    }
    let expired = async || Ok(dropped(&limen, "hello_timeout"));
    let held = 3 - refused;
    eventually(
        Duration::from_secs(5),
        "the held hellos to expire",
        expired,
        |n| *n == held,
    )
    .await?;

    // The whole flight completes the hello; the reject is one
    // CONNECTION_CLOSE, and nothing more.
    let whole = client().await?;
    let second = capture("chromium148-pq-2of2.bin");
    whole.send_to(&second, addr).await?;
    whole.send_to(&first, addr).await?;
    let close = answer(&whole, Duration::from_secs(5)).await;
    let close = close.expect("a CONNECTION_CLOSE for the rejected name");
    assert_eq!(close[0] & 0xf0, 0xc0, "a v1 long-header Initial");
    assert_eq!(answer(&whole, Duration::from_millis(300)).await, None);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_flight_reaches_the_upstream_byte_for_byte_in_order() -> anyhow::Result<()> {
    let upstream = UdpSocket::bind("127.0.0.1:0").await?;
    let limen = limen(Some(upstream.local_addr()?)).await?;
    // Out of order, a retransmission in between: limen holds all three and
    // replays them as they came; the fourth comes while the policy decides
    // (or just after) and follows them, in order.
    let flight = [
        capture("chromium148-pq-2of2.bin"),
        capture("chromium148-pq-retx-a.bin"),
        capture("chromium148-pq-1of2.bin"),
        capture("chromium148-pq-retx-b.bin"),
    ];
    let chromium = client().await?;
    for datagram in &flight {
        chromium.send_to(datagram, limen.addr).await?;
    }
    let mut buffer = vec![0; 65_535];
    let mut flow = None;
    for (i, sent) in flight.iter().enumerate() {
        let received =
            tokio::time::timeout(Duration::from_secs(5), upstream.recv_from(&mut buffer));
        let (n, from) = received.await??;
        assert_eq!(&buffer[..n], &sent[..], "datagram {i}");
        // One flow socket for the client, whichever datagram.
        assert_eq!(*flow.get_or_insert(from), from);
    }
    // And the upstream's answer reaches the client from limen's address.
    let reply = b"server's first flight";
    upstream.send_to(reply, flow.expect("a flow")).await?;
    let mut back = vec![0; 64];
    let (n, from) =
        tokio::time::timeout(Duration::from_secs(5), chromium.recv_from(&mut back)).await??;
    assert_eq!((&back[..n], from), (&reply[..], limen.addr));
    limen.stop().await
}

/// The next datagram `upstream` receives, and from where.
async fn upstream_gets(upstream: &UdpSocket) -> anyhow::Result<(Vec<u8>, SocketAddr)> {
    let mut buffer = vec![0; 65_535];
    let received = tokio::time::timeout(Duration::from_secs(5), upstream.recv_from(&mut buffer));
    let (n, from) = received.await??;
    buffer.truncate(n);
    Ok((buffer, from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_reaches_the_upstream_as_a_new_path_it_can_validate() -> anyhow::Result<()> {
    let upstream = UdpSocket::bind("127.0.0.1:0").await?;
    let limen = limen(Some(upstream.local_addr()?)).await?;
    let chromium = client().await?;
    for datagram in [
        capture("chromium148-pq-1of2.bin"),
        capture("chromium148-pq-2of2.bin"),
    ] {
        chromium.send_to(&datagram, limen.addr).await?;
    }
    let (_, first_path) = upstream_gets(&upstream).await?;
    upstream_gets(&upstream).await?;
    // The server names its connection ID in a long-header packet (version
    // 1, an empty DCID, SCID ab x 8): limen relays it and learns the ID.
    let mut named = vec![0xe0, 0, 0, 0, 1, 0, 8];
    named.extend_from_slice(&[0xab; 8]);
    named.resize(64, 0);
    upstream.send_to(&named, first_path).await?;
    assert_eq!(answer(&chromium, Duration::from_secs(5)).await, Some(named));
    // A short header with that ID from another address (a NAT rebinding, or
    // a spoof): the upstream gets it from a new port of limen's, a path it
    // validates before trusting (RFC 9000 §9), not on the flow's old one.
    let mut short = vec![0x40];
    short.extend_from_slice(&[0xab; 8]);
    short.extend_from_slice(b"moved");
    let elsewhere = client().await?;
    elsewhere.send_to(&short, limen.addr).await?;
    let (got, second_path) = upstream_gets(&upstream).await?;
    assert_eq!(got, short);
    assert_ne!(second_path, first_path, "a move is a new path");
    // What the server sends on the new path reaches the new address only.
    upstream.send_to(b"challenge", second_path).await?;
    assert_eq!(
        answer(&elsewhere, Duration::from_secs(5)).await,
        Some(b"challenge".to_vec())
    );
    // The real client speaks again from its own address: the flow moves
    // back, on yet another path, and the server's answer reaches it.
    chromium.send_to(&short, limen.addr).await?;
    let (_, third_path) = upstream_gets(&upstream).await?;
    assert!(third_path != first_path && third_path != second_path);
    upstream.send_to(b"back", third_path).await?;
    assert_eq!(
        answer(&chromium, Duration::from_secs(5)).await,
        Some(b"back".to_vec())
    );
    limen.stop().await
}
