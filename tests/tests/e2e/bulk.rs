//! 64 MiB each way through one passthrough connection, byte-identical, with
//! half-close honoured in both directions.

use std::time::Duration;

use limen_e2e::harness::Running;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::hello;

const SIZE: usize = 64 << 20;

/// A deterministic, non-repeating-looking stream so reordering would show.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_with_half_close() -> anyhow::Result<()> {
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let up_addr = upstream.local_addr()?;
    let hello = hello("small-a.test.bin");
    let to_server = pattern(1, SIZE);
    let to_client = pattern(2, SIZE);

    // The backend reads until the client's FIN arrives through limen, and only
    // then answers: that is only possible if half-close is propagated.
    let expected_up = Sha256::digest([hello.as_slice(), &to_server].concat());
    let reply = to_client.clone();
    let server = tokio::spawn(async move {
        let (mut s, _) = upstream.accept().await?;
        let mut got = Vec::with_capacity(SIZE + 512);
        s.read_to_end(&mut got).await?;
        s.write_all(&reply).await?;
        s.shutdown().await?;
        anyhow::Ok(Sha256::digest(&got))
    });

    let routes = format!("default = \"{up_addr}\"");
    let limen = Running::with_static_routes(&routes, "").await?;
    let client = TcpStream::connect(limen.addr).await?;
    let (mut rd, mut wr) = client.into_split();
    let data = to_server.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&hello).await?;
        wr.write_all(&data).await?;
        wr.shutdown().await?; // half-close: we keep reading
        anyhow::Ok(())
    });
    let mut got = Vec::with_capacity(SIZE);
    tokio::time::timeout(Duration::from_secs(120), rd.read_to_end(&mut got)).await??;
    writer.await??;
    assert_eq!(server.await??, expected_up, "client to upstream differs");
    assert_eq!(got.len(), SIZE);
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&to_client),
        "upstream to client differs"
    );
    limen.stop().await
}

/// The other direction first: the upstream sends its data and FIN while the
/// client is still uploading; the client still gets every byte and an EOF,
/// and its upload still reaches the upstream whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_half_closes_first() -> anyhow::Result<()> {
    const LEN: usize = 8 << 20;
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let up_addr = upstream.local_addr()?;
    let hello = hello("small-a.test.bin");
    let down = pattern(3, LEN);
    let up = pattern(4, LEN);
    let expected_up = Sha256::digest([hello.as_slice(), &up].concat());
    let reply = down.clone();
    let server = tokio::spawn(async move {
        let (s, _) = upstream.accept().await?;
        let (mut r, mut w) = s.into_split();
        // Answer and half-close at once, then keep reading the upload.
        w.write_all(&reply).await?;
        w.shutdown().await?;
        let mut got = Vec::with_capacity(LEN + 512);
        r.read_to_end(&mut got).await?;
        anyhow::Ok(Sha256::digest(&got))
    });
    let routes = format!("default = \"{up_addr}\"");
    let limen = Running::with_static_routes(&routes, "").await?;
    let (mut rd, mut wr) = TcpStream::connect(limen.addr).await?.into_split();
    wr.write_all(&hello).await?;
    let mut got = Vec::with_capacity(LEN);
    tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut got)).await??;
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&down),
        "upstream to client differs"
    );
    // The upstream has closed its side; the client's side is still open.
    wr.write_all(&up).await?;
    wr.shutdown().await?;
    let digest = tokio::time::timeout(Duration::from_secs(60), server).await???;
    assert_eq!(digest, expected_up, "client to upstream differs");
    limen.stop().await
}
