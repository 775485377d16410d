//! A candidate on canary (`limen swap --canary PERCENT`): it decides the
//! share of client addresses a stable hash gives it, the same on every
//! instance; one that fails too often is rolled back on its own, and no
//! client sees its failures (the live policy decides those connections).

use std::net::SocketAddr;
use std::sync::Arc;

use limen::control::admin::protocol::Answer;
use limen::observe::metrics::names;
use limen_e2e::harness::Running;
use limen_e2e::{backend, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::WAIT;
use crate::pools::ask;

fn module(name: &str) -> anyhow::Result<Arc<[u8]>> {
    Ok(std::fs::read(guests::example(name))?.into())
}

/// Put example `name` (with `config_json`) on canary for `percent` of
/// client addresses.
async fn on_canary(
    limen: &Running,
    name: &str,
    config_json: String,
    percent: f64,
) -> anyhow::Result<()> {
    let mode = (false, Some(percent));
    let answer = limen
        .control
        .try_candidate(module(name)?, Some(config_json), mode)
        .await;
    anyhow::ensure!(matches!(answer, Answer::Shadowing(_)), "{answer:?}");
    Ok(())
}

/// A limen whose live policy sends everything to `live`.
async fn start(live: SocketAddr, extra: &str) -> anyhow::Result<Running> {
    let routes = format!("default = \"{live}\"\nroutes = []");
    let extra = format!("[metrics]\nbind = \"127.0.0.1:0\"\n{extra}");
    Running::with_static_routes(&routes, &extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_percent_canary_takes_a_tenth_of_the_clients_the_same_on_two_instances()
-> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let (c, _rc) = backend::raw(b"C").await?;
    let (one, two) = (start(a, "").await?, start(a, "").await?);
    let candidate = format!(r#"{{"default":"{c}","routes":[]}}"#);
    for limen in [&one, &two] {
        on_canary(limen, "static-routes", candidate.clone(), 10.0).await?;
    }
    // 5,000 client addresses (127.0.x.y), each asking both instances.
    let clients: Vec<SocketAddr> = (1..=20u8)
        .flat_map(|x| (1..=250u8).map(move |y| SocketAddr::from(([127, 0, x, y], 0))))
        .collect();
    let mut workers = tokio::task::JoinSet::new();
    for chunk in clients.chunks(clients.len() / 16 + 1) {
        let (chunk, one, two) = (chunk.to_vec(), one.addr, two.addr);
        workers.spawn(async move {
            let mut candidate = 0usize;
            for client in chunk {
                let (first, second) =
                    (ask(one, Some(client)).await?, ask(two, Some(client)).await?);
                anyhow::ensure!(first == second, "{client} got {first} and {second}");
                anyhow::ensure!(first == b'A' || first == b'C', "{client} got {first}");
                candidate += usize::from(first == b'C');
            }
            anyhow::Ok(candidate)
        });
    }
    let mut candidate = 0;
    while let Some(done) = workers.join_next().await {
        candidate += done??;
    }
    let share = candidate as f64 / clients.len() as f64;
    assert!(
        (0.08..=0.12).contains(&share),
        "the candidate decided {share}"
    );
    let decided = [("outcome", "decided")];
    assert_eq!(
        one.counter(names::POLICY_CANARY, &decided),
        candidate as u64
    );
    one.stop().await?;
    two.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_traps_on_half_its_calls_is_rolled_back_and_no_client_sees_it()
-> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let limen = start(a, "[policy.canary]\nmin_calls = 20\nmargin = 0.05").await?;
    let candidate = format!(r#"{{"upstream":"{a}"}}"#);
    on_canary(&limen, "misbehave", candidate, 100.0).await?;
    let panic = limen::offline::explain::synthesise("panic.test", &[])?;
    let fine = limen::offline::explain::synthesise("fine.test", &[])?;
    for i in 0..60 {
        let hello = if i % 2 == 0 { &panic } else { &fine };
        let reply = crate::common::ask(limen.addr, hello).await?;
        assert_eq!(reply, b"A", "connection {i}");
    }
    let rolled = [("outcome", "rolled_back")];
    assert_eq!(
        limen
            .counter_reaches(names::POLICY_CANARY, &rolled, 1)
            .await,
        1
    );
    // Judged at its 20th call: 10 of them failed.
    let failed = limen.counter(names::POLICY_CANARY, &[("outcome", "failed")]);
    assert_eq!(failed, 10);
    // The trial is over: nothing to promote.
    let answer = limen.control.promote().await;
    anyhow::ensure!(matches!(answer, Answer::Denied { .. }), "{answer:?}");
    limen.stop().await
}

/// A connection for `sni` from `source`: its first reply byte, and the
/// connection, left open (a routed one holds its slots until it ends).
async fn from(limen: SocketAddr, source: SocketAddr, sni: &str) -> anyhow::Result<(u8, TcpStream)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(source)?;
    let mut client = socket.connect(limen).await?;
    let hello = limen::offline::explain::synthesise(sni, &[])?;
    client.write_all(&hello).await?;
    let mut first = [0u8; 1];
    let read = tokio::time::timeout(WAIT, client.read_exact(&mut first)).await;
    read.map_err(|_| anyhow::anyhow!("{sni} from {source}: no reply"))??;
    Ok((first[0], client))
}

/// The connections a canary decides are real: they count against the live
/// limits. Two live connections fill a route's `max_connections = 2`, and
/// a client on canary is then refused by the candidate's same cap, rather
/// than let through by a table of the candidate's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_shares_the_live_limits() -> anyhow::Result<()> {
    let (a, _ra) = backend::raw(b"A").await?;
    let (c, _rc) = backend::raw(b"C").await?;
    let routes = format!(
        "default = \"{a}\"\nroutes = [ {{ match = \"www.test\", upstream = \"{a}\", max_connections = 2 }} ]"
    );
    let extra = "[metrics]\nbind = \"127.0.0.1:0\"";
    let limen = Running::with_static_routes(&routes, extra).await?;
    let candidate = format!(
        r#"{{"default":"{c}","routes":[{{"match":"www.test","upstream":"{c}","max_connections":2}}]}}"#
    );
    on_canary(&limen, "static-routes", candidate, 50.0).await?;
    // One client address of each policy, found through the unlimited default.
    let (mut live, mut canary) = (None, None);
    for y in 1..=64u8 {
        let source = SocketAddr::from(([127, 0, 3, y], 0));
        match from(limen.addr, source, "probe.test").await?.0 {
            b'A' => live = live.or(Some(source)),
            b'C' => canary = canary.or(Some(source)),
            other => anyhow::bail!("{source} got {other}"),
        }
    }
    let (Some(live), Some(canary)) = (live, canary) else {
        anyhow::bail!("64 addresses did not give one of each policy");
    };
    let (first, one) = from(limen.addr, live, "www.test").await?;
    let (second, two) = from(limen.addr, live, "www.test").await?;
    assert_eq!((first, second), (b'A', b'A'));
    // An access_denied alert: a record of type 21.
    let (third, _) = from(limen.addr, canary, "www.test").await?;
    assert_eq!(third, 21, "the canary let a third connection through");
    let slots = [("kind", "slots")];
    assert_eq!(limen.counter(names::POLICY_LIMITED, &slots), 1);
    drop((one, two));
    limen.stop().await
}
