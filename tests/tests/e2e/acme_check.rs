//! ACME as the operator sees it before and when it fails: `limen check`
//! validates `[acme]` offline and asks the directory only with `--online`;
//! a failed validation is an event carrying the CA's problem document.

use std::time::Duration;

use limen_e2e::free_port;
use limen_e2e::wait::eventually;

use crate::acme::setup;
use crate::common::{config_file, limen_check};
use crate::process::Process;

/// `limen check [--online]` on `toml`: (success, stderr).
async fn check(toml: &str, online: bool) -> anyhow::Result<(bool, String)> {
    let mut command = limen_check(toml);
    if online {
        command = command.arg("--online");
    }
    let out = command.finish().await?;
    Ok((out.ok, out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_validates_acme_offline_and_asks_the_directory_only_when_told() -> anyhow::Result<()>
{
    let setup = setup().await?;
    let (ok, err) = check(&setup.toml, false).await?;
    assert!(ok, "{err}");
    let (ok, err) = check(&setup.toml, true).await?;
    assert!(ok && err.contains("answers as an ACME server"), "{err}");
    let storage = setup.storage.display().to_string();
    let cases = [
        (
            setup.toml.replace(&storage, "/proc/limen-acme"),
            false,
            "E045",
        ),
        (
            setup.toml.replace(
                &setup.pebble.tls_ca().display().to_string(),
                "/nonexistent.pem",
            ),
            false,
            "E044",
        ),
        (
            setup
                .toml
                .replace(&format!(":{}/dir", setup.pebble.port), ":1/dir"),
            true,
            "E046",
        ),
    ];
    for (toml, online, code) in cases {
        let (ok, err) = check(&toml, online).await?;
        assert!(!ok && err.contains(code), "{code}: {err}");
    }
    // Offline, an unreachable directory is not looked at.
    let nowhere = setup
        .toml
        .replace(&format!(":{}/dir", setup.pebble.port), ":1/dir");
    let (ok, err) = check(&nowhere, false).await?;
    assert!(ok, "{err}");
    Ok(())
}

/// Port 443 not reaching limen (here: the CA validates on a port nothing
/// listens on): the order fails, and the event carries the CA's problem
/// document, so the operator reads why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_is_an_event_with_the_problem_detail() -> anyhow::Result<()> {
    let setup = setup().await?;
    let elsewhere = free_port()?;
    let toml = setup.toml.replace(
        &format!("127.0.0.1:{}", setup.port),
        &format!("127.0.0.1:{elsewhere}"),
    );
    let limen = Process::start(&config_file(&toml), setup.admin.clone())?;
    let log = eventually(
        Duration::from_secs(60),
        "an acme.failed event in the log",
        async || Ok(limen.log()),
        |log| log.contains("acme.failed"),
    )
    .await?;
    let line = log
        .lines()
        .find(|l| l.contains("acme.failed"))
        .unwrap_or_default();
    assert!(
        line.contains("tls-alpn-01") && line.contains("urn:ietf:params:acme:error:"),
        "{line}"
    );
    assert!(
        line.contains("retry_in_s") && line.contains("serving"),
        "{line}"
    );
    assert!(
        !log.contains("acme.account_gone"),
        "a failed validation is not a lost account"
    );
    Ok(())
}
