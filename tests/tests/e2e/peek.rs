//! Gathering the ClientHello: splits across TCP segments and TLS records, and
//! the bad cases (not TLS, truncated, oversize, silent) that must be closed
//! cleanly without touching an upstream while limen keeps serving others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use limen::observe::metrics::names::PARSE_FAILURES;
use limen_e2e::backend::{self, Received};
use limen_e2e::harness::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::common::{WAIT, hello, raw_exchange};

struct Setup {
    limen: Running,
    rx: [UnboundedReceiver<Received>; 3],
    accepted: [Arc<AtomicUsize>; 3],
}

/// limen with raw backends A, B, C for a.test, b.test, c.test (default A).
async fn setup(limits: &str, plain: Option<SocketAddr>) -> anyhow::Result<Setup> {
    let (a, a_rx, a_n) = backend::raw_counted(b"A").await?;
    let (b, b_rx, b_n) = backend::raw_counted(b"B").await?;
    let (c, c_rx, c_n) = backend::raw_counted(b"C").await?;
    let plain = plain
        .map(|p| format!("plain = \"{p}\"\n"))
        .unwrap_or_default();
    let routes = format!(
        "{plain}default = \"{a}\"\nroutes = [ {{ match = \"b.test\", upstream = \"{b}\" }}, {{ match = \"c.test\", upstream = \"{c}\" }} ]"
    );
    let limen = Running::with_static_routes(&routes, limits).await?;
    Ok(Setup {
        limen,
        rx: [a_rx, b_rx, c_rx],
        accepted: [a_n, b_n, c_n],
    })
}

impl Setup {
    /// Connections the backends accepted so far, all three together.
    fn upstream_connections(&self) -> usize {
        self.accepted.iter().map(|n| n.load(Ordering::SeqCst)).sum()
    }

    async fn still_serves(&mut self) -> anyhow::Result<()> {
        let reply = raw_exchange(
            self.limen.addr,
            &[&hello("small-b.test.bin")],
            Duration::ZERO,
        )
        .await?;
        anyhow::ensure!(reply == b"B", "limen stopped serving: {reply:?}");
        tokio::time::timeout(WAIT, self.rx[1].recv()).await?;
        Ok(())
    }
}

/// The 1.8 KB post-quantum hello, in one record and in two, split into two
/// TCP writes at every byte position: always the same upstream, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_hello_split_at_every_byte_and_across_records() -> anyhow::Result<()> {
    let mut s = setup("", None).await?;
    for file in ["large-b.test.bin", "large2rec-b.test.bin"] {
        let hello = hello(file);
        let addr = s.limen.addr;
        // Eight clients at a time keep this to a few seconds.
        for chunk in (1..hello.len()).collect::<Vec<_>>().chunks(8) {
            let mut tasks = Vec::new();
            for &at in chunk {
                let hello = hello.clone();
                tasks.push(tokio::spawn(async move {
                    let (first, second) = hello.split_at(at);
                    (
                        at,
                        raw_exchange(addr, &[first, second], Duration::from_millis(1)).await,
                    )
                }));
            }
            for task in tasks {
                let (at, reply) = task.await?;
                assert_eq!(reply?, b"B", "{file} split at {at}");
            }
            for _ in chunk {
                let received = tokio::time::timeout(WAIT, s.rx[1].recv())
                    .await?
                    .expect("backend report");
                assert_eq!(received.bytes, hello, "{file}: replayed bytes differ");
            }
        }
        let per_backend: Vec<usize> = s
            .accepted
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect();
        assert_eq!(
            per_backend[0] + per_backend[2],
            0,
            "{file}: another upstream was used"
        );
    }
    assert_eq!(s.limen.counter(PARSE_FAILURES, &[]), 0);
    s.limen.stop().await
}

/// One byte per TCP segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_one_byte_per_segment() -> anyhow::Result<()> {
    let mut s = setup("", None).await?;
    let hello = hello("large2rec-c.test.bin");
    let parts: Vec<&[u8]> = hello.chunks(1).collect();
    let reply = raw_exchange(s.limen.addr, &parts, Duration::from_micros(50)).await?;
    assert_eq!(reply, b"C");
    let received = tokio::time::timeout(WAIT, s.rx[2].recv())
        .await?
        .expect("backend report");
    assert_eq!(received.bytes, hello);
    s.limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_tls_without_plain_route_is_closed() -> anyhow::Result<()> {
    let mut s = setup("", None).await?;
    let reply = raw_exchange(s.limen.addr, &[b"SSH-2.0-OpenSSH_9.2\r\n"], Duration::ZERO).await?;
    assert!(
        reply.is_empty(),
        "a non-TLS client gets a bare close: {reply:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.upstream_connections(), 0);
    s.still_serves().await?;
    s.limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_tls_goes_to_the_plain_upstream() -> anyhow::Result<()> {
    let (plain, mut plain_rx) = backend::raw(b"P").await?;
    let s = setup("", Some(plain)).await?;
    let reply = raw_exchange(s.limen.addr, &[b"SSH-2.0-OpenSSH_9.2\r\n"], Duration::ZERO).await?;
    assert_eq!(reply, b"P");
    let received = tokio::time::timeout(WAIT, plain_rx.recv())
        .await?
        .expect("backend report");
    assert_eq!(received.bytes, b"SSH-2.0-OpenSSH_9.2\r\n");
    s.limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_oversize_and_silent_hellos_are_closed_and_counted() -> anyhow::Result<()> {
    let limits = "[limits]\nhello_max_bytes = \"1KiB\"\nhello_timeout = \"300ms\"\n";
    let mut s = setup(limits, None).await?;
    let count = |s: &Setup, reason: &str| s.limen.counter(PARSE_FAILURES, &[("reason", reason)]);

    // Truncated: half a hello, then FIN.
    let small = hello("small-a.test.bin");
    let mut tcp = TcpStream::connect(s.limen.addr).await?;
    tcp.write_all(&small[..150]).await?;
    tcp.shutdown().await?;
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply)).await??;
    assert!(reply.is_empty());
    assert_eq!(count(&s, "malformed"), 1);

    // Oversize: the 1.8 KB hello against a 1 KiB cap, refused from its header.
    let reply = raw_exchange(s.limen.addr, &[&hello("large-a.test.bin")], Duration::ZERO).await;
    assert!(
        reply.map_or(true, |r| r.is_empty()),
        "oversize hello must be closed"
    );
    assert_eq!(count(&s, "too_large"), 1);

    // Silent: connect and send nothing; closed after the hello timeout.
    let started = std::time::Instant::now();
    let mut tcp = TcpStream::connect(s.limen.addr).await?;
    let n = tokio::time::timeout(WAIT, tcp.read(&mut [0u8; 16])).await??;
    assert_eq!(n, 0, "silent client gets EOF");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout"
    );
    assert_eq!(count(&s, "timeout"), 1);

    // Garbage after a TLS record header byte: malformed, not "not TLS".
    let reply = raw_exchange(
        s.limen.addr,
        &[b"\x16\x09\x09\x00\x05hello"],
        Duration::ZERO,
    )
    .await?;
    assert!(reply.is_empty());
    assert_eq!(count(&s, "malformed"), 2);

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        s.upstream_connections(),
        0,
        "no upstream may be contacted for a bad hello"
    );
    s.still_serves().await?;
    s.limen.stop().await
}
