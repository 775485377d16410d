//! A candidate tried by a whole fleet through etcd: `limen publish
//! --shadow` puts it beside every instance's live policy, each instance
//! reports its counts in its record (`limen fleet status`), `--promote`
//! makes it the published policy and `--abort` drops it.

use std::net::SocketAddr;
use std::path::Path;

use limen_e2e::cli::{Ran, limen};
use limen_e2e::etcd::Etcd;
use limen_e2e::wait::eventually;
use limen_e2e::{backend, guests};

use crate::common::{ask, hello, scratch};
use crate::fleet::{Instance, PREFIX, REACH, all_live, all_route, fleet_status, instance, sha256};

/// `limen publish` with `flags`, of `module` routing everything to
/// `upstream` (none: `--promote` or `--abort`, given in `flags`).
async fn publish(
    etcd: &Etcd,
    module: Option<(&Path, SocketAddr)>,
    flags: &[&str],
) -> anyhow::Result<Ran> {
    let endpoint = etcd.endpoint();
    let mut command = limen(["publish", "--etcd", &endpoint, "--prefix", PREFIX]).args(flags);
    if let Some((module, upstream)) = module {
        let config = scratch("policy.toml");
        std::fs::write(&config, format!("[config]\ndefault = \"{upstream}\"\n"))?;
        command = command
            .arg("--module")
            .arg(module)
            .arg("--config")
            .arg(config);
    }
    command.finish().await
}

/// Wait until `limen fleet status` shows a line containing `want` (or,
/// `absent`, none containing it).
async fn status_shows(etcd: &Etcd, want: &str, absent: bool) -> anyhow::Result<String> {
    let table = async || {
        Ok(fleet_status(etcd)
            .await
            .map(|r| r.text())
            .map_err(|e| e.to_string()))
    };
    let what = format!(
        "fleet status {} `{want}`",
        if absent { "without" } else { "with" }
    );
    let shown = eventually(REACH, &what, table, |t| {
        t.as_ref().is_ok_and(|t| t.contains(want) != absent)
    })
    .await?;
    shown.map_err(anyhow::Error::msg)
}

/// Wait until `one` has a candidate on trial (`on`), or has none.
async fn trying(one: &Instance, on: bool, what: &str) -> anyhow::Result<()> {
    let has = async || {
        let status = one.process.status().await;
        Ok(status.is_ok_and(|s| s.candidate.is_some() == on))
    };
    eventually(REACH, what, has, |done| *done).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_shadows_a_candidate_reports_its_counts_then_promotes_or_aborts_it()
-> anyhow::Result<()> {
    let etcd = Etcd::start(&scratch("etcd")).await?;
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;
    let module = guests::example("static-routes");
    let out = publish(&etcd, Some((&module, a)), &[]).await?;
    assert!(out.ok, "{}", out.text());
    let one = instance(&etcd, "limen-trial", &scratch("state")).await?;
    all_live(&[&one], &sha256(&module)?).await?;
    // The same module, routing to B: shadowed, so every live reply stays A.
    let out = publish(&etcd, Some((&module, b)), &["--shadow"]).await?;
    assert!(out.ok, "{}", out.text());
    trying(&one, true, "the instance to shadow the candidate").await?;
    for _ in 0..5 {
        assert_eq!(ask(one.addr, &hello("small-a.test.bin")).await?, b"A");
    }
    let table = status_shows(&etcd, "different 5", false).await?;
    assert!(table.contains("(shadow)"), "{table}");
    // Promoted: it is the published policy, and the trial is over.
    let out = publish(&etcd, None, &["--promote"]).await?;
    assert!(out.ok, "{}", out.text());
    all_route(&[&one], b"B", REACH).await?;
    status_shows(&etcd, "candidate ", true).await?;
    // Published as a candidate again, then aborted: the instance drops it.
    let out = publish(&etcd, Some((&module, a)), &["--shadow"]).await?;
    assert!(out.ok, "{}", out.text());
    status_shows(&etcd, "candidate ", false).await?;
    let out = publish(&etcd, None, &["--abort"]).await?;
    assert!(out.ok, "{}", out.text());
    status_shows(&etcd, "candidate ", true).await?;
    trying(&one, false, "the instance to drop the candidate").await?;
    Ok(())
}
