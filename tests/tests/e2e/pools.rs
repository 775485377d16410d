//! Pools: real backends behind `[upstreams.pools]`, a decision naming the
//! pool. Balancing by weight, stickiness by client address, least
//! connections; members named by DNS; terminate re-encrypting to a member.
//! (`pools_health.rs`: members going down and up.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use limen::observe::metrics::names;
use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::common::{WAIT, scratch, tls_get};

/// A backend that answers its `id` and FIN once it has the hello, and can
/// be killed (its listener closed: connects are refused) and started again
/// on the same address.
pub(crate) struct Member {
    pub(crate) addr: SocketAddr,
    id: u8,
    accept: Option<JoinHandle<()>>,
}

impl Member {
    pub(crate) async fn start(id: u8) -> anyhow::Result<Member> {
        let mut member = Member {
            addr: "127.0.0.1:0".parse()?,
            id,
            accept: None,
        };
        member.revive().await?;
        Ok(member)
    }

    pub(crate) async fn revive(&mut self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        self.addr = listener.local_addr()?;
        let id = self.id;
        self.accept = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(backend::answer_id(stream, id));
            }
        }));
        Ok(())
    }

    pub(crate) fn kill(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

/// A config whose `static-routes` sends `www.test` to pool `web` (`pool`
/// defines it), with `/metrics` served.
pub(crate) fn toml(pool: &str, policy_extra: &str) -> String {
    let routes = r#"routes = [ { match = "www.test", pool = "web" } ]"#;
    config(
        &guests::example("static-routes"),
        routes,
        policy_extra,
        &format!("[metrics]\nbind = \"127.0.0.1:0\"\n\n{pool}"),
    )
}

/// A limen running [`toml`].
pub(crate) async fn start(pool: &str, policy_extra: &str) -> anyhow::Result<Running> {
    Running::start(&toml(pool, policy_extra)).await
}

pub(crate) fn members(members: &[&Member]) -> String {
    let list: Vec<String> = members.iter().map(|m| format!("\"{}\"", m.addr)).collect();
    list.join(", ")
}

/// One connection for `www.test` (from `source`, if given): the id of the
/// member that answered, or the error.
pub(crate) async fn ask(limen: SocketAddr, source: Option<SocketAddr>) -> std::io::Result<u8> {
    let run = async {
        let mut client = match source {
            Some(source) => {
                let socket = TcpSocket::new_v4()?;
                socket.bind(source)?;
                socket.connect(limen).await?
            }
            None => TcpStream::connect(limen).await?,
        };
        let hello =
            limen::offline::explain::synthesise("www.test", &[]).map_err(std::io::Error::other)?;
        client.write_all(&hello).await?;
        the_id(&mut client).await
    };
    tokio::time::timeout(WAIT, run).await?
}

/// A member's whole answer, which must be its one-byte id.
pub(crate) async fn the_id<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<u8> {
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    match reply[..] {
        [id] => Ok(id),
        _ => Err(std::io::Error::other(format!("reply {reply:?}"))),
    }
}

/// Members 1, 2 and 3 in pool `web`, balanced by `balance`, and a limen.
async fn balanced(balance: &str) -> anyhow::Result<([Member; 3], Running)> {
    let set = [
        Member::start(1).await?,
        Member::start(2).await?,
        Member::start(3).await?,
    ];
    let pool = format!(
        "[upstreams.pools.web]\nmembers = [{}]\nbalance = \"{balance}\"",
        members(&set.iter().collect::<Vec<_>>())
    );
    Ok((set, start(&pool, "").await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_follows_the_weights() -> anyhow::Result<()> {
    let (a, b, c) = (
        Member::start(1).await?,
        Member::start(2).await?,
        Member::start(3).await?,
    );
    let pool = format!(
        "[upstreams.pools.web]\nmembers = [\"{}\", \"{}\", {{ address = \"{}\", weight = 2 }}]",
        a.addr, b.addr, c.addr
    );
    let limen = start(&pool, "").await?;
    let seen = Arc::new([0, 1, 2, 3].map(|_| AtomicUsize::new(0)));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (seen, addr) = (seen.clone(), limen.addr);
        clients.spawn(async move {
            for _ in 0..375 {
                let id = ask(addr, None).await?;
                seen[usize::from(id)].fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = clients.join_next().await {
        done??;
    }
    let got = [1, 2, 3].map(|i| seen[i].load(Ordering::Relaxed));
    // 3,000 connections, weights 1:1:2, every member up: the schedule is
    // followed exactly (the issue asks for ±5 %).
    assert_eq!(got, [750, 750, 1500]);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_client_keeps_each_client_address_on_one_member() -> anyhow::Result<()> {
    let (_set, limen) = balanced("hash_client").await?;
    let mut used = std::collections::BTreeSet::new();
    for host in 2..=31u8 {
        let source = SocketAddr::from(([127, 0, 0, host], 0));
        let first = ask(limen.addr, Some(source)).await?;
        for _ in 0..5 {
            assert_eq!(
                ask(limen.addr, Some(source)).await?,
                first,
                "127.0.0.{host} moved"
            );
        }
        used.insert(first);
    }
    assert_eq!(
        used.len(),
        3,
        "30 addresses should reach every member: {used:?}"
    );
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_fills_the_emptiest_member() -> anyhow::Result<()> {
    let (set, limen) = balanced("least_connections").await?;
    let hello = limen::offline::explain::synthesise("www.test", &[])?;
    // Long-lived connections: each reads its member's id and stays open.
    let mut held: Vec<(u8, TcpStream)> = Vec::new();
    let open = |hello: Vec<u8>| async move {
        let mut client = TcpStream::connect(limen.addr).await?;
        client.write_all(&hello).await?;
        let mut id = [0u8; 1];
        tokio::time::timeout(WAIT, client.read_exact(&mut id)).await??;
        anyhow::Ok((id[0], client))
    };
    for _ in 0..6 {
        held.push(open(hello.clone()).await?);
    }
    let count = |held: &[(u8, TcpStream)], id| held.iter().filter(|(i, _)| *i == id).count();
    assert_eq!([1, 2, 3].map(|id| count(&held, id)), [2, 2, 2]);
    // Member 2's connections end; the next two go there.
    held.retain(|(id, _)| *id != 2);
    let member = set[1].addr.to_string();
    let labels = [("pool", "web"), ("member", member.as_str())];
    limen
        .gauge_reads(WAIT, names::UPSTREAM_MEMBER_CONNECTIONS, &labels, 0)
        .await?;
    for _ in 0..2 {
        held.push(open(hello.clone()).await?);
    }
    assert_eq!([1, 2, 3].map(|id| count(&held, id)), [2, 2, 2]);
    drop(held);
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_reencrypts_to_a_pool_member_verified_by_its_address() -> anyhow::Result<()> {
    let pki = limen_e2e::pki::Pki::new(&["127.0.0.1"])?;
    let dir = scratch("pool-certs");
    let (pem, key) = pki.issue_files(&dir, "shop", &["shop.test"], None)?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem)?;
    let member = backend::tls("P", pki.server_config()?).await?;
    let routes = r#"routes = [ { match = "shop.test", terminate = { certificate = "shop", pool = "web", upstream_tls = true } } ]"#;
    let toml = config(
        &guests::example("static-routes"),
        routes,
        "",
        &format!(
            "[certificates.shop]\nchain = \"{}\"\nkey = \"{}\"\n\n[upstream_tls]\nca = \"{}\"\n\n\
             [upstreams.pools.web]\nmembers = [\"{member}\"]\n\
             [upstreams.pools.web.health]\ncheck = \"tls\"\nca = \"{}\"",
            pem.display(),
            key.display(),
            ca.display(),
            ca.display()
        ),
    );
    let limen = Running::start(&toml).await?;
    let body = tls_get(limen.addr, "shop.test", pki.client_config(&[])?).await?;
    // No server name in the decision: the member's address was verified
    // (the backend's certificate is for 127.0.0.1) and sent no SNI.
    assert_eq!(body, "backend=P sni=-");
    limen.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_member_stands_for_the_addresses_it_resolves_to() -> anyhow::Result<()> {
    let member = Member::start(7).await?;
    let port = member.addr.port();
    let pool = format!(
        "[upstreams.pools.web]\nmembers = [\"localhost:{port}\"]\nresolve_every = \"1s\"\n\
         [upstreams.pools.web.health]\ncheck = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"100ms\""
    );
    let limen = start(&pool, "").await?;
    assert_eq!(ask(limen.addr, None).await?, 7);
    // The member is the address, labelled as such.
    let labels = [
        ("pool", "web"),
        ("member", &format!("127.0.0.1:{port}")[..]),
    ];
    assert_eq!(limen.counter(names::UPSTREAM_MEMBER_HEALTHY, &labels), 1);
    // Resolving again (same answer) keeps the member and its state.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(ask(limen.addr, None).await?, 7);
    assert_eq!(limen.counter(names::UPSTREAM_MEMBER_HEALTHY, &labels), 1);
    limen.stop().await
}
