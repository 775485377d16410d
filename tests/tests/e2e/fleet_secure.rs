//! A fleet on an etcd secured as production runs it: TLS only, client
//! certificates required, a user with a password, and tokens that expire
//! between calls (so limen signs in again by itself).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use limen_e2e::cli::{Limen, Ran, limen};
use limen_e2e::etcd::{Etcd, Secure};
use limen_e2e::harness::sourced_config;
use limen_e2e::pki::{Pki, write_private};
use limen_e2e::{backend, guests};

use crate::common::{config_file, scratch};
use crate::fleet::{PREFIX, REACH, all_live, all_route, sha256, start};

const PASSWORD: &str = "s3cret-for-limen";

/// The files both etcd and limen read.
struct Files {
    secure: Secure,
    password: PathBuf,
    /// A client certificate with a Common Name, which etcd's JSON API
    /// refuses once users are on.
    named: (PathBuf, PathBuf),
}

fn files(dir: &Path) -> anyhow::Result<Files> {
    std::fs::create_dir_all(dir)?;
    let pki = Pki::new(&["127.0.0.1"])?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem)?;
    let (cert, key) = pki.issue_files(dir, "etcd", &["127.0.0.1"], None)?;
    let client = pki.client_files(dir, "limen", None)?;
    let named = pki.client_files(dir, "named", Some("root"))?;
    let password = dir.join("password");
    write_private(&password, format!("{PASSWORD}\n").as_bytes())?;
    let secure = Secure {
        ca,
        cert,
        key,
        client,
        // Shorter than limen's 3 s lease renewal: every renewal finds its
        // token expired and signs in again.
        token_ttl: 1,
    };
    Ok(Files {
        secure,
        password,
        named,
    })
}

/// Which credentials a command presents.
struct Credentials<'a> {
    ca: &'a Path,
    /// Certificate and key.
    cert: Option<&'a (PathBuf, PathBuf)>,
    password: Option<&'a Path>,
}

impl Files {
    /// Every credential, right.
    fn all(&self) -> Credentials<'_> {
        Credentials {
            ca: &self.secure.ca,
            cert: Some(&self.secure.client),
            password: Some(&self.password),
        }
    }
}

/// `limen ARGS` for the fleet under [`PREFIX`], presenting `credentials`.
fn fleet_command(etcd: &Etcd, args: &[&str], credentials: &Credentials) -> Limen {
    let mut command = limen(args)
        .args(["--etcd", &etcd.endpoint(), "--prefix", PREFIX, "--ca"])
        .arg(credentials.ca);
    if let Some((cert, key)) = credentials.cert {
        command = command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    if let Some(password) = credentials.password {
        command = command.args(["--user", "root", "--password-file"]);
        command = command.arg(password);
    }
    command
}

/// `limen publish` of static-routes routing everything to `upstream`.
async fn publish(
    etcd: &Etcd,
    credentials: &Credentials<'_>,
    upstream: std::net::SocketAddr,
) -> anyhow::Result<Ran> {
    let config = scratch("policy.toml");
    std::fs::write(&config, format!("[config]\ndefault = \"{upstream}\"\n"))?;
    fleet_command(etcd, &["publish"], credentials)
        .arg("--module")
        .arg(guests::example("static-routes"))
        .arg("--config")
        .arg(config)
        .finish()
        .await
}

async fn fleet_status(etcd: &Etcd, credentials: &Credentials<'_>) -> anyhow::Result<Ran> {
    fleet_command(etcd, &["fleet", "status"], credentials)
        .finish()
        .await
}

fn instance_config(etcd: &Etcd, files: &Files) -> PathBuf {
    let (cert, key) = &files.secure.client;
    let extra = format!(
        "[source.etcd]\nendpoints = [\"{}\"]\nprefix = \"{PREFIX}\"\nstate_dir = \"{}\"\n\
         id = \"secure-1\"\nuser = \"root\"\npassword_file = \"{}\"\nca = \"{}\"\n\
         cert = \"{}\"\nkey = \"{}\"\n\n[admin]\nsocket = \"{}\"\n",
        etcd.endpoint(),
        scratch("state").display(),
        files.password.display(),
        files.secure.ca.display(),
        cert.display(),
        key.display(),
        scratch("admin.sock").display(),
    );
    config_file(&sourced_config("", &extra))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificates_and_expiring_tokens_carry_a_fleet() -> anyhow::Result<()> {
    let files = files(&scratch("pki"))?;
    let etcd = Etcd::start_secure(&scratch("etcd"), files.secure.clone()).await?;
    etcd.enable_auth(PASSWORD)?;
    let (a, _) = backend::raw(b"A").await?;
    let (b, _) = backend::raw(b"B").await?;

    let out = publish(&etcd, &files.all(), a).await?;
    assert!(out.ok, "{}", out.text());
    let instance = start(instance_config(&etcd, &files)).await?;
    all_route(&[&instance], b"A", REACH).await?;

    // Tokens live 1 s: after a few renewals, each on an expired token, the
    // instance still holds its lease and its watch still delivers.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let out = publish(&etcd, &files.all(), b).await?;
    assert!(out.ok, "{}", out.text());
    all_route(&[&instance], b"B", REACH).await?;
    let module = sha256(&guests::example("static-routes"))?;
    all_live(&[&instance], &module).await?;
    let log = instance.process.log();
    assert!(!log.contains("source.disconnected"), "{log}");
    assert!(log.contains("source.token_expired"), "{log}");

    // `fleet status` signs in the same way and sees the instance.
    let status = fleet_status(&etcd, &files.all()).await?;
    assert!(
        status.ok && status.text().contains("secure-1"),
        "{}",
        status.text()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_a_missing_certificate_is_refused_with_etcds_reason()
-> anyhow::Result<()> {
    let files = files(&scratch("pki"))?;
    let etcd = Etcd::start_secure(&scratch("etcd"), files.secure.clone()).await?;
    etcd.enable_auth(PASSWORD)?;
    let (a, _) = backend::raw(b"A").await?;

    let wrong = scratch("wrong-password");
    write_private(&wrong, b"not-it")?;
    let wrong = Credentials {
        password: Some(&wrong),
        ..files.all()
    };
    let out = publish(&etcd, &wrong, a).await?;
    assert!(!out.ok, "{}", out.text());
    assert!(
        out.text().contains("authentication failed"),
        "{}",
        out.text()
    );

    // No client certificate: etcd ends the TLS handshake.
    let no_cert = Credentials {
        cert: None,
        ..files.all()
    };
    let out = fleet_status(&etcd, &no_cert).await?;
    // TLS 1.3: the client finishes first; etcd's alert ends the request.
    assert!(!out.ok, "{}", out.text());
    assert!(out.text().contains("BadCertificate"), "{}", out.text());

    // The CA is not etcd's: the server is not trusted.
    let other = Pki::new(&["127.0.0.1"])?;
    let other_ca = scratch("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_pem)?;
    let untrusted = Credentials {
        ca: &other_ca,
        ..files.all()
    };
    let out = fleet_status(&etcd, &untrusted).await?;
    assert!(!out.ok, "{}", out.text());
    assert!(out.text().contains("certificate"), "{}", out.text());
    // A certificate with a Common Name: refused by etcd, and said why.
    let named = Credentials {
        cert: Some(&files.named),
        ..files.all()
    };
    let out = fleet_status(&etcd, &named).await?;
    assert!(!out.ok, "{}", out.text());
    assert!(
        out.text().contains("without a Common Name"),
        "{}",
        out.text()
    );
    // curl agrees the server is fine with the right CA and a certificate.
    let (cert, key) = &files.secure.client;
    let curl = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(&files.secure.ca)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg(format!("{}/version", etcd.endpoint()))
        .output()?;
    assert!(curl.status.success(), "{curl:?}");
    Ok(())
}
